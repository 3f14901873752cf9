"""Malformed certificates in a quote's PCK chain are rejected with a reason code, never a traceback (issue 17).

`cryptography` parses a certificate's version and extensions lazily, on first access; a quote whose PCK chain
held a certificate with a bad version field or a malformed extension made `verifier verify` die outside any
handler. `verifier._x509.load_der` now reads every part while loading. The dataset: each PCK-chain certificate
of a real quote (trustee's tdx_quote_4.dat) with its version field set to an undefined value, and with the
inner DER tag of each standard extension it carries replaced (the DER stays well-formed at the outer level, so
only the lazy parse can notice). The PEM keeps its length, so the quote still parses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

import verifier
from tests.conftest import VECTORS, run_cli
from verifier import Options, Reason, VerifierError

QUOTE = VECTORS / "tdx" / "trustee" / "tdx_quote_4.dat"
AT = datetime(2023, 6, 20, tzinfo=UTC)
BEGIN, END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
# TBSCertificate.version: [0] EXPLICIT INTEGER, v3 = 2 (RFC 5280 4.1.2.1).
VERSION_FIELD = bytes.fromhex("a003020102")
# id-ce extensions a PCK chain carries (RFC 5280 4.2.1): OID bytes after 06 03.
EXTENSIONS = {
    "authorityKeyIdentifier": bytes.fromhex("0603551d23"),
    "subjectKeyIdentifier": bytes.fromhex("0603551d0e"),
    "keyUsage": bytes.fromhex("0603551d0f"),
    "basicConstraints": bytes.fromhex("0603551d13"),
    "cRLDistributionPoints": bytes.fromhex("0603551d1f"),
}
Mutation = Callable[[bytes], bytes]
NOT_A_TAG = 0x1F  # a high-tag-number form with no following bytes: no DER parser accepts it here
EXPECTED = {Reason.MALFORMED_EVIDENCE, Reason.CERTIFICATE_INVALID}


def _pem_blocks(quote: bytes) -> list[tuple[int, int]]:
    """(start, end) of the base64 body of each PEM certificate in the quote."""
    spans, pos = [], 0
    while (start := quote.find(BEGIN, pos)) != -1:
        end = quote.index(END, start)
        spans.append((start + len(BEGIN), end))
        pos = end
    return spans


def _replace_der(quote: bytes, index: int, mutate: Mutation) -> bytes:
    start, end = _pem_blocks(quote)[index]
    body = quote[start:end]
    der = base64.b64decode(b"".join(body.split()))
    changed = mutate(der)
    assert len(changed) == len(der)
    assert changed != der
    encoded = iter(base64.b64encode(changed))
    # Same length, same line breaks: only the base64 characters change.
    rebuilt = bytes(byte if byte in b"\r\n" else next(encoded) for byte in body)
    return quote[:start] + rebuilt + quote[end:]


def _bad_version(value: int) -> Mutation:
    def mutate(der: bytes) -> bytes:
        at = der.index(VERSION_FIELD)
        return der[: at + 4] + bytes([value]) + der[at + 5 :]

    return mutate


def _bad_extension(oid: bytes) -> Mutation:
    def mutate(der: bytes) -> bytes:
        at = der.index(oid) + len(oid)
        if der[at] == 0x01:  # critical BOOLEAN
            at += 3
        assert der[at] == 0x04  # extnValue OCTET STRING
        length = der[at + 1]
        inner = at + 2 + (length & 0x7F if length & 0x80 else 0)
        return der[:inner] + bytes([NOT_A_TAG]) + der[inner + 1 :]

    return mutate


def _dataset() -> list[ParameterSet]:
    quote = QUOTE.read_bytes() if QUOTE.is_file() else b""
    cases = []
    for index, (start, end) in enumerate(_pem_blocks(quote)[:2]):  # the PCK leaf and the PCK CA
        who = ("pck-leaf", "pck-ca")[index]
        der = base64.b64decode(b"".join(quote[start:end].split()))
        for value in (0x03, 0x7F):
            cases.append(pytest.param(index, _bad_version(value), id=f"{who}-version-{value:#x}"))
        for name, oid in EXTENSIONS.items():
            if oid in der:
                cases.append(pytest.param(index, _bad_extension(oid), id=f"{who}-{name}"))
    return cases


DATASET = _dataset()


def test_the_dataset_holds_the_ten_kinds_of_issue_17() -> None:
    assert len(DATASET) >= 10


@pytest.mark.parametrize(("index", "mutate"), DATASET)
def test_malformed_pck_chain_certificate_is_a_reason_not_a_traceback(
    vectors: Path, index: int, mutate: Mutation
) -> None:
    quote = _replace_der((vectors / "tdx" / "trustee" / "tdx_quote_4.dat").read_bytes(), index, mutate)
    collateral = tuple(p.read_bytes() for p in sorted((vectors / "tdx" / "go-tdx-guest").iterdir()))
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", quote, Options(at=AT, collateral=collateral))
    assert info.value.reason in EXPECTED, info.value


def test_cli_prints_json_for_a_malformed_pck_certificate(vectors: Path, tmp_path: Path) -> None:
    quote = _replace_der((vectors / "tdx" / "trustee" / "tdx_quote_4.dat").read_bytes(), 0, _bad_version(0x03))
    (tmp_path / "quote.dat").write_bytes(quote)
    done = run_cli(
        "verifier",
        "verify",
        "--tee",
        "tdx",
        str(tmp_path / "quote.dat"),
        "--collateral",
        str(vectors / "tdx" / "go-tdx-guest"),
        "--at",
        "2023-06-20T00:00:00Z",
    )
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"]["reason"] in {reason.value for reason in EXPECTED}
