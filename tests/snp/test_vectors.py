"""The real SNP vectors of tests/vectors/snp against the values of EXPECTED.log (SNP section)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import verifier
from tests.snp.conftest import TODAY
from verifier import Options, Reason, VerifierError
from verifier.snp._certs import _check_signature, load_certificates, parse_vek, verify_issued_by

# EXPECTED.log S1: go-sev-guest attestation.bin + vcek.testcer + ask_ark_milan.pem
S1 = {
    "report_version": 2,
    "guest_svn": 0,
    "policy": 0xB0000,
    "debug": True,
    "migrate_ma": False,
    "smt_allowed": True,
    "family_id": "00000000000000000000000000000000",
    "image_id": "00000000000000000000000000000000",
    "vmpl": 0,
    "signature_algo": 1,
    "current_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68, "raw": "4405000000000002"},
    "platform_info": 0x1,
    "report_data": "0102030405" + "00" * 59,
    "measurement": "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
    "host_data": "00" * 32,
    "id_key_digest": "00" * 48,
    "author_key_digest": "00" * 48,
    "report_id": "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a",
    "report_id_ma": "ff" * 32,
    "reported_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68, "raw": "4405000000000002"},
    "cpuid": None,
    "chip_id": "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e5378618"
    "4ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d",
    "committed_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68, "raw": "4405000000000002"},
    "current_version": "1.49.3",
    "committed_version": "1.49.3",
    "launch_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68, "raw": "4405000000000002"},
    "signing_key": "vcek",
    "product": "Milan",
}

# EXPECTED.log S2: trustee test-report.bin + test-vcek.der (reported_tcb differs from current_tcb)
S2 = {
    "report_version": 2,
    "guest_svn": 4,
    "policy": 0x3001F,
    "debug": False,
    "migrate_ma": False,
    "family_id": "01000000000000000000000000000000",
    "image_id": "02000000000000000000000000000000",
    "vmpl": 0,
    "current_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 206, "raw": "ce08000000000003"},
    "platform_info": 0x1,
    "report_data": "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2" + "00" * 32,
    "measurement": "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
    "host_data": "00" * 32,
    "id_key_digest": "0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3",
    "author_key_digest": "00" * 48,
    "report_id": "385eba81216de4776548fcb86f8ead03c1ebc92b6207f3210d9ccebb89c99005",
    "report_id_ma": "ff" * 32,
    "reported_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "raw": "7308000000000003"},
    "cpuid": None,
    "chip_id": "c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f"
    "8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e",
    "committed_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "raw": "7308000000000003"},
    "current_version": "1.52.4",
    "committed_version": "1.52.4",
    "launch_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "raw": "7308000000000003"},
    "signing_key": "vcek",
    "product": "Milan",
}

# EXPECTED.log S3: trustee test-vlek-report.bin + test-vlek.der (VLEK, AWS), report version 3
S3 = {
    "report_version": 3,
    "guest_svn": 0,
    "policy": 0x30000,
    "debug": False,
    "vmpl": 1,
    "current_tcb": {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 220, "raw": "dc18000000000004"},
    "platform_info": 0x27,
    "report_data": "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd5"
    "4e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca",
    "measurement": "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
    "host_data": "00" * 32,
    "report_id": "62e04fba700afd93b3a0cc0649b633ee36587fa8a8c2eb5d9b7cd7bc5f4bb057",
    "report_id_ma": "ff" * 32,
    "reported_tcb": {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 217, "raw": "d918000000000004"},
    "cpuid": {"family": 0x19, "model": 0x1, "stepping": 0x1},
    "chip_id": "00" * 64,
    "committed_tcb": {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 219, "raw": "db18000000000004"},
    "current_version": "1.55.29",
    "committed_version": "1.55.29",
    "launch_tcb": {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 219, "raw": "db18000000000004"},
    "signing_key": "vlek",
    "product": "Milan",
}

REQUIRED_KEYS = {
    "report_version", "measurement", "report_data", "host_data", "chip_id", "policy", "debug", "migrate_ma",
    "smt_allowed", "vmpl", "guest_svn", "family_id", "image_id", "reported_tcb", "product", "signing_key",
}  # fmt: skip

CASES = {
    "go-sev-guest": ("go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer", TODAY, S1),
    "trustee-vcek": ("trustee/test-report.bin", "trustee/test-vcek.der", TODAY, S2),
    "trustee-vlek-2025-06-01": (
        "trustee/test-vlek-report.bin",
        "trustee/test-vlek.der",
        datetime(2025, 6, 1, tzinfo=UTC),
        S3,
    ),
}


@pytest.mark.parametrize(("report", "cert", "at", "expected"), CASES.values(), ids=CASES.keys())
def test_real_reports_verify_with_expected_claims(
    snp_vectors: Path, report: str, cert: str, at: datetime, expected: dict[str, object]
) -> None:
    options = Options(at=at, certificates=((snp_vectors / cert).read_bytes(),))
    result = verifier.verify("snp", (snp_vectors / report).read_bytes(), options)
    assert result.tee == "snp"
    assert set(result.claims) >= REQUIRED_KEYS
    for key, value in expected.items():
        assert result.claims[key] == value, key
    assert result.report_data.hex() == expected["report_data"]


def test_evidence_json_with_extended_report_certificates(snp_vectors: Path) -> None:
    """The evidence JSON of docs/evidence.md, the VCEK coming from the extended report's certificate table."""

    def b64(p: str) -> str:
        return base64.b64encode((snp_vectors / p).read_bytes()).decode()

    evidence = {
        "attestation_report": b64("trustee/test-report.bin"),
        "certificates": {"vcek": b64("trustee/test-vcek.der")},
    }
    result = verifier.verify("snp", evidence, Options(at=TODAY))
    assert result.claims["reported_tcb"] != result.claims["current_tcb"]
    assert result.claims["reported_tcb"]["microcode"] == 115  # type: ignore[index]


def test_report_data_and_host_data_bindings(snp_vectors: Path) -> None:
    report = (snp_vectors / "go-sev-guest/attestation.bin").read_bytes()
    vcek = (snp_vectors / "go-sev-guest/vcek.testcer").read_bytes()
    ok = Options(at=TODAY, certificates=(vcek,), report_data=bytes([1, 2, 3, 4, 5]), init_data_digest=bytes(48))
    assert verifier.verify("snp", report, ok).claims["vmpl"] == 0
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", report, Options(at=TODAY, certificates=(vcek,), report_data=bytes([1, 2, 3, 4, 6])))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH
    assert "REPORT_DATA is 0102030405" in caught.value.detail
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", report, Options(at=TODAY, certificates=(vcek,), init_data_digest=b"\x01" * 48))
    assert caught.value.reason is Reason.INIT_DATA_MISMATCH
    assert f"HOST_DATA is {'00' * 32}, expected {'01' * 32}" in caught.value.detail


# NEG: named datasets. (report, certificates given, evaluation time, expected reason, text in the detail)
NEGATIVES = {
    # EXPECTED.log NEG-S4: the VLEK expired 2025-12-10
    "vlek-expired-today": (
        "trustee/test-vlek-report.bin",
        ["trustee/test-vlek.der"],
        TODAY,
        Reason.CERTIFICATE_EXPIRED,
        "VLEK is valid 2024-12-10T22:14:21+00:00 to 2025-12-10T22:14:21+00:00",
    ),
    # EXPECTED.log NEG-S1: edited VCEKs
    "edited-vcek-legacy": (
        "trustee/test-report.bin",
        ["trustee/test-vcek-invalid-legacy.der"],
        TODAY,
        Reason.SIGNATURE_INVALID,
        "does not verify",
    ),
    "edited-vcek-new": (
        "trustee/test-report.bin",
        ["trustee/test-vcek-invalid-new.der"],
        TODAY,
        Reason.SIGNATURE_INVALID,
        "does not verify",
    ),
    # EXPECTED.log NEG-S2: another chip's VCEK
    "other-chips-vcek": (
        "go-sev-guest/attestation.bin",
        ["trustee/test-vcek.der"],
        TODAY,
        Reason.SIGNATURE_INVALID,
        "ATTESTATION_REPORT SIGNATURE",
    ),
    "no-vcek-no-source": (
        "go-sev-guest/attestation.bin",
        [],
        TODAY,
        Reason.COLLATERAL_MISSING,
        "no VCEK/VLEK",
    ),
    "vcek-before-its-validity": (
        "go-sev-guest/attestation.bin",
        ["go-sev-guest/vcek.testcer"],
        datetime(2022, 1, 1, tzinfo=UTC),
        Reason.CERTIFICATE_EXPIRED,
        "VCEK is valid 2022-09-24",
    ),
}


@pytest.mark.parametrize(("report", "certs", "at", "reason", "detail"), NEGATIVES.values(), ids=NEGATIVES.keys())
def test_real_negatives(
    snp_vectors: Path, report: str, certs: list[str], at: datetime, reason: Reason, detail: str
) -> None:
    options = Options(at=at, certificates=tuple((snp_vectors / c).read_bytes() for c in certs))
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", (snp_vectors / report).read_bytes(), options)
    assert caught.value.reason is reason
    assert detail in caught.value.detail


def test_milan_vcek_against_the_genoa_chain_is_refused(snp_vectors: Path) -> None:
    """The extended report names Genoa's ASK/ARK for a Milan VCEK: the product is ambiguous, never guessed."""
    genoa = (snp_vectors / "go-sev-guest/ask_ark_genoa.pem").read_bytes()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    ask, ark = (c.public_bytes(Encoding.DER) for c in load_certificates(genoa))
    evidence = {
        "attestation_report": b64((snp_vectors / "go-sev-guest/attestation.bin").read_bytes()),
        "certificates": {
            "vcek": b64((snp_vectors / "go-sev-guest/vcek.testcer").read_bytes()),
            "ask": b64(ask),
            "ark": b64(ark),
        },
    }
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", evidence, Options(at=TODAY))
    assert caught.value.reason is Reason.CERTIFICATE_INVALID
    assert "'SEV-Genoa', not the trusted Milan ASK" in caught.value.detail


def test_milan_vcek_does_not_chain_to_genoa_ask(snp_vectors: Path) -> None:
    vek = parse_vek((snp_vectors / "go-sev-guest/vcek.testcer").read_bytes())
    genoa_ask, _ = load_certificates((snp_vectors / "go-sev-guest/ask_ark_genoa.pem").read_bytes())
    milan_ask, _ = load_certificates((snp_vectors / "go-sev-guest/ask_ark_milan.pem").read_bytes())
    verify_issued_by(vek.cert, milan_ask, "VCEK")
    with pytest.raises(VerifierError) as caught:
        verify_issued_by(vek.cert, genoa_ask, "VCEK")
    assert caught.value.reason is Reason.CERTIFICATE_INVALID
    assert "issuer is CN=SEV-Milan" in caught.value.detail
    # and not only by name: Genoa's ASK key does not verify the Milan VCEK's signature
    with pytest.raises(VerifierError, match="does not verify under SEV-Genoa's key"):
        _check_signature(vek.cert, genoa_ask, "VCEK")
