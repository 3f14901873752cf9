"""Regressions found by the differential suite and the fuzzer (issue 17), on the synthetic PKI: a malformed
certificate in a quote's PCK chain is certificate_invalid, and a quote from a quoting enclave that is not
Intel's is unsupported_format; never a traceback. (test_malformed_certificates.py covers the real quote.)

`cryptography` parses an X.509 version when loading but names, extensions and algorithms lazily; a bad field
used to escape the chain check as a bare ValueError / InvalidVersion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import verifier
from tests.conftest import run_cli
from verifier import Options, Reason, VerifierError

from ._malformed import CASES, bad_key_usage, bad_version, malformed_chain
from .make_test_chain import DcapPki, make_pki, make_quote


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def _options(pki: DcapPki) -> Options:
    return Options(at=pki.at, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)})


def test_edits_make_certificates_that_cryptography_loads_lazily(pki: DcapPki) -> None:
    der = pki.pck_ca.public_bytes(Encoding.DER)
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_certificate(bad_version(der))
    lazy = x509.load_der_x509_certificate(bad_key_usage(der))
    with pytest.raises(ValueError, match="parsing"):
        _ = lazy.extensions


@pytest.mark.parametrize(("position", "edit"), CASES.values(), ids=CASES.keys())
def test_malformed_certificate_in_pck_chain_is_certificate_invalid(
    pki: DcapPki, position: int, edit: Callable[[bytes], bytes]
) -> None:
    quote = make_quote(pki, chain_pem=malformed_chain(pki, position, edit))
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", quote, _options(pki))
    assert info.value.reason is Reason.CERTIFICATE_INVALID
    assert "certificate" in info.value.detail


@pytest.mark.parametrize("case", ["pck-ca-version", "pck-ca-key-usage"])
def test_cli_prints_the_reason_not_a_traceback(pki: DcapPki, tmp_path: Path, case: str) -> None:
    position, edit = CASES[case]
    (tmp_path / "quote.dat").write_bytes(make_quote(pki, chain_pem=malformed_chain(pki, position, edit)))
    done = run_cli("verifier", "verify", "--tee", "tdx", str(tmp_path / "quote.dat"), "--at", pki.at.isoformat())
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"]["reason"] == "certificate_invalid"


def test_qe_vendor_id_must_be_intels(pki: DcapPki) -> None:
    quote = make_quote(pki, qe_vendor_id=bytes.fromhex("00112233445566778899aabbccddeeff"))
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", quote, _options(pki))
    assert info.value.reason is Reason.UNSUPPORTED_FORMAT
    assert "header.qe_vendor_id is 00112233445566778899aabbccddeeff" in info.value.detail
    assert "939a7233f79c4ca9940a0db3957f0607" in info.value.detail


def test_intel_qe_vendor_id_verifies(pki: DcapPki) -> None:
    assert verifier.verify("tdx", make_quote(pki), _options(pki)).claims["tcb_status"] == "UpToDate"


FUZZ_CRASHES = Path(__file__).resolve().parents[1] / "fuzz" / "crashes" / "evidence"


@pytest.mark.parametrize("name", sorted(p.name for p in FUZZ_CRASHES.glob("tdx-pck-*")))
def test_fuzzer_found_certificates_are_certificate_invalid(name: str) -> None:
    """Found by the `evidence` fuzz target after the fix above: a duplicated extension (DuplicateExtension) and
    a name attribute with an unknown string tag (KeyError) were still escaping from the lazily parsed fields."""
    data = (FUZZ_CRASHES / name).read_bytes()
    assert data[0] % 6 == 3, "the fuzz target's selector byte names tdx"
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", data[1:], Options(at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert info.value.reason is Reason.CERTIFICATE_INVALID
