"""Older CoCo guests' TDX evidence: `{"quote", "cc_eventlog", "aa_eventlog"}`, the AA event log as text replayed
to RTMR3 (verifier/tdx/_aa_eventlog.py), on quotes of the test-only DCAP PKI."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

import verifier
from verifier import Options, Reason, VerifierError

from .make_test_chain import DcapPki, make_pki, make_quote

EVENTS = ("github.com/confidential-containers pull-image docker.io/library/busybox@sha256:00ff", "veritee.test run x")


def replayed(lines: tuple[str, ...], init: bytes = bytes(48)) -> tuple[str, bytes]:
    """The log text and the RTMR3 it replays to (trustee's AAEventlog::accumulate_hash, written out)."""
    state = hashlib.sha384(init + hashlib.sha384(f"INIT sha384/{init.hex()}".encode()).digest()).digest()
    for line in lines:
        state = hashlib.sha384(state + hashlib.sha384(line.encode()).digest()).digest()
    return "\n".join((f"INIT sha384/{init.hex()}", *lines)) + "\n", state


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def evidence(pki: DcapPki, text: object, rtmr3: bytes) -> bytes:
    quote = make_quote(pki, b"\x07" * 64, rtmrs=(bytes(48), bytes(48), bytes(48), rtmr3))
    return json.dumps({"cc_eventlog": None, "quote": base64.b64encode(quote).decode(), "aa_eventlog": text}).encode()


def options(pki: DcapPki) -> Options:
    return Options(at=pki.at, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)})


def test_an_older_guests_aa_eventlog_replays_to_rtmr3_and_becomes_claims(pki: DcapPki) -> None:
    text, rtmr3 = replayed(EVENTS)
    claims = verifier.verify("tdx", evidence(pki, text, rtmr3), options(pki)).claims
    assert claims["aa_eventlog"] == [
        {
            "domain": "github.com/confidential-containers",
            "operation": "pull-image",
            "content": "docker.io/library/busybox@sha256:00ff",
        },
        {"domain": "veritee.test", "operation": "run", "content": "x"},
    ]


@pytest.mark.parametrize("text", [None, ""])
def test_null_or_empty_aa_eventlog_is_no_log(pki: DcapPki, text: str | None) -> None:
    claims = verifier.verify("tdx", evidence(pki, text, bytes(48)), options(pki)).claims
    assert "aa_eventlog" not in claims


def test_an_altered_event_is_eventlog_mismatch(pki: DcapPki) -> None:
    text, rtmr3 = replayed(EVENTS)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tdx", evidence(pki, text.replace("busybox", "evilbox"), rtmr3), options(pki))
    assert caught.value.reason is Reason.EVENTLOG_MISMATCH
    assert "aa_eventlog replays (sha384, 2 events)" in caught.value.detail


MALFORMED = {
    "not-a-string": ({"INIT": "sha384"}, "field aa_eventlog is dict, expected a string or null"),
    "no-init-line": ("a b c\n", "aa_eventlog line 1 is 'a b c', expected 'INIT <sha256|sha384|sha512>/<hex>'"),
    "unknown-algorithm": ("INIT md5/00\n", "algorithm 'md5'"),
    "init-not-hex": ("INIT sha384/zz\n", "initial value 'zz' is not hex"),
    "event-with-two-fields": (f"INIT sha384/{'00' * 48}\na b\n", "line 2 is 'a b', expected"),
}


@pytest.mark.parametrize(("text", "detail"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_aa_eventlog(pki: DcapPki, text: object, detail: str) -> None:
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tdx", evidence(pki, text, bytes(48)), options(pki))
    assert caught.value.reason is Reason.MALFORMED_EVIDENCE
    assert detail in caught.value.detail
