"""CC event logs with TDX quotes: trustee's CCEL_data_ovmf replays to the RTMRs of EXPECTED.log; CCEL_data
does not match quote 4 (eventlog_mismatch)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import verifier
from verifier import Options, Reason, VerifierError
from verifier.eventlog import parse

from ._vectors import AT_GO_TDX_GUEST, CCEL_DATA_RTMRS, OVMF_RTMRS, go_tdx_guest, quote
from .make_test_chain import make_pki, make_quote


def evidence(quote_bytes: bytes, ccel: bytes | None) -> bytes:
    doc = {"quote": base64.b64encode(quote_bytes).decode(), "cc_eventlog": ccel and base64.b64encode(ccel).decode()}
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("name", "rtmrs"), [("CCEL_data_ovmf", OVMF_RTMRS), ("CCEL_data", CCEL_DATA_RTMRS)])
def test_ccel_replays_to_expected_log(vectors: Path, name: str, rtmrs: tuple[str, ...]) -> None:
    replayed = parse((vectors / "tdx" / "trustee" / name).read_bytes(), "ccel").replay()["sha384"]
    assert tuple(replayed[f"rtmr{i}"].hex() for i in range(len(rtmrs))) == rtmrs


def test_ccel_data_does_not_match_quote_4(vectors: Path) -> None:
    ccel = (vectors / "tdx" / "trustee" / "CCEL_data").read_bytes()
    with pytest.raises(VerifierError) as info:
        verifier.verify(
            "tdx", evidence(quote(vectors, 4), ccel), Options(at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors))
        )
    assert info.value.reason is Reason.EVENTLOG_MISMATCH
    assert "rtmr0" in info.value.detail


def test_ovmf_ccel_with_a_quote_carrying_its_rtmrs(vectors: Path) -> None:
    pki = make_pki()
    ccel = (vectors / "tdx" / "trustee" / "CCEL_data_ovmf").read_bytes()
    quote_bytes = make_quote(pki, rtmrs=tuple(bytes.fromhex(r) for r in OVMF_RTMRS))
    opts = Options(at=pki.at, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)})
    claims = verifier.verify("tdx", evidence(quote_bytes, ccel), opts).claims
    assert claims["rtmr_replay_ok"] is True
    log = claims["eventlog"]
    assert isinstance(log, dict)
    assert len(log["events"]) == 20
    # A quote whose RTMR2 differs from the log is refused.
    other = make_quote(pki, rtmrs=(*(bytes.fromhex(r) for r in OVMF_RTMRS[:2]), b"\x01" * 48))
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", evidence(other, ccel), opts)
    assert info.value.reason is Reason.EVENTLOG_MISMATCH
    assert "rtmr2" in info.value.detail


def test_without_a_log_there_is_no_replay_claim(vectors: Path) -> None:
    opts = Options(at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors))
    claims = verifier.verify("tdx", evidence(quote(vectors, 4), None), opts).claims
    assert "rtmr_replay_ok" not in claims
    assert "eventlog" not in claims


def test_garbage_ccel_is_malformed(vectors: Path) -> None:
    opts = Options(at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors))
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", evidence(quote(vectors, 4), b"\x01" * 100), opts)
    assert info.value.reason is Reason.MALFORMED_EVIDENCE
