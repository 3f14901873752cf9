"""TPM quote verification: every failure with its reason code, as named datasets; synthetic quotes signed by
keys made at test time cover the schemes and hashes the real vectors lack (RSAPSS, ECDSA, SHA-384/512)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import verifier
from verifier import Options, Reason, VerifierError

from . import _quotes
from ._gotpm import decode

AT = datetime(2026, 11, 27, tzinfo=UTC)
RSA_KEY = rsa.generate_private_key(65537, 2048)
OTHER_RSA_KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
NONCE32 = bytes(range(32))
PCRS = {"sha256": {i: hashlib.sha256(bytes([i])).digest() for i in range(16)}}


def _b64(d: dict[str, Any], *path: str) -> bytes:
    for key in path[:-1]:
        d = d[key]
    return base64.b64decode(d[path[-1]])


def _set(d: dict[str, Any], value: bytes, *path: str) -> None:
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = base64.b64encode(value).decode()


# ---- positive: every scheme and hash ----


@pytest.mark.parametrize(
    ("key", "scheme", "hash_name"),
    [
        (RSA_KEY, "rsassa", "sha256"),
        (RSA_KEY, "rsassa", "sha1"),
        (RSA_KEY, "rsassa", "sha384"),
        (RSA_KEY, "rsassa", "sha512"),
        (RSA_KEY, "rsapss", "sha256"),
        (RSA_KEY, "rsapss", "sha384"),
        (EC_KEY, "ecdsa", "sha256"),
        (EC_KEY, "ecdsa", "sha384"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__[:3],
)
def test_synthetic_quote_verifies(key: Any, scheme: str, hash_name: str) -> None:
    evidence = _quotes.evidence(key, PCRS, NONCE32, scheme=scheme, hash_name=hash_name)
    claims = verifier.verify("tpm", evidence, Options(at=AT, report_data=NONCE32)).claims
    assert claims["signature_scheme"] == scheme
    assert claims["signature_hash"] == hash_name
    assert claims["ak_trust"] == "none"


def test_only_quoted_pcrs_become_claims() -> None:
    evidence = _quotes.evidence(RSA_KEY, {"sha256": {0: bytes(32), 7: b"\x07" * 32}}, NONCE32)
    evidence["tpm_quote"]["pcrs"]["sha256"]["9"] = "11" * 32  # present but not selected
    claims = verifier.verify("tpm", evidence, Options(at=AT)).claims
    assert claims["pcrs"] == {"sha256": {"0": "00" * 32, "7": "07" * 32}}


def test_pcr_claims_are_lowercase_hex_in_index_order() -> None:
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    registers = evidence["tpm_quote"]["pcrs"]["sha256"]
    # Uppercase hex, keys in descending order (a protobuf map or another encoder may give either).
    evidence["tpm_quote"]["pcrs"]["sha256"] = {key: registers[key].upper() for key in reversed(registers)}
    claims = verifier.verify("tpm", evidence, Options(at=AT)).claims
    assert list(claims["pcrs"]["sha256"].items()) == [(str(i), PCRS["sha256"][i].hex()) for i in range(16)]  # type: ignore[index]


def _shift_pcr_boundary(evidence: dict[str, Any]) -> None:
    """PCR0 one byte short and PCR1 one byte long: the joined hex is unchanged, each value has the wrong size."""
    registers = evidence["tpm_quote"]["pcrs"]["sha256"]
    registers["1"] = registers["0"][-2:] + registers["1"]
    registers["0"] = registers["0"][:-2]


def test_two_banks_hash_in_selection_order() -> None:
    pcrs = {"sha1": {0: b"\x01" * 20}, "sha256": {0: b"\x02" * 32, 1: b"\x03" * 32}}
    claims = verifier.verify("tpm", _quotes.evidence(RSA_KEY, pcrs, NONCE32), Options(at=AT)).claims
    assert set(cast("dict[str, object]", claims["pcrs"])) == {"sha1", "sha256"}


# ---- init data: PCR8 == SHA-256(32 zero bytes || digest) ----


def test_init_data_binding_in_pcr8() -> None:
    digest = hashlib.sha256(b"algorithm = 'sha256'\n").digest()
    pcrs = {"sha256": {**PCRS["sha256"], 8: hashlib.sha256(bytes(32) + digest).digest()}}
    evidence = _quotes.evidence(RSA_KEY, pcrs, NONCE32)
    verifier.verify("tpm", evidence, Options(at=AT, init_data_digest=digest))
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT, init_data_digest=bytes(32)))
    assert caught.value.reason is Reason.INIT_DATA_MISMATCH
    assert "PCR sha256[8]" in caught.value.detail


def test_init_data_expected_but_pcr8_not_quoted() -> None:
    evidence = _quotes.evidence(RSA_KEY, {"sha256": {0: bytes(32)}}, NONCE32)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT, init_data_digest=bytes(32)))
    assert caught.value.reason is Reason.INIT_DATA_MISMATCH
    assert "not quoted" in caught.value.detail


# ---- AK trust ----


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(AT - timedelta(days=1))
        .not_valid_after(AT + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _ak_cert(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], ak: Any) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test AK")]))
        .issuer_name(ca[1].subject)
        .public_key(ak.public_key())
        .serial_number(2)
        .not_valid_before(AT - timedelta(days=1))
        .not_valid_after(AT + timedelta(days=30))
        .sign(ca[0], hashes.SHA256())
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_ak_certificate_chaining_to_configured_root() -> None:
    ca = _ca("test TPM CA")
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    _set(evidence, _der(_ak_cert(ca, RSA_KEY)), "ak_certificate")
    options = Options(at=AT, trust={"tpm": (_der(ca[1]),)})
    assert verifier.verify("tpm", evidence, options).claims["ak_trust"] == "certificate"


def test_ak_certificate_given_with_cert_option() -> None:
    ca = _ca("test TPM CA")
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    options = Options(at=AT, trust={"tpm": (_der(ca[1]),)}, certificates=(_der(_ak_cert(ca, RSA_KEY)),))
    assert verifier.verify("tpm", evidence, options).claims["ak_trust"] == "certificate"


class _Enrolled:
    def __init__(self, *fingerprints: bytes) -> None:
        self.fingerprints = set(fingerprints)

    def is_enrolled(self, ak_sha256: bytes) -> bool:
        return ak_sha256 in self.fingerprints


def test_enrolled_ak() -> None:
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    fingerprint = hashlib.sha256(_quotes.spki(RSA_KEY)).digest()
    trusted = Options(at=AT, tpm_enrolled_aks=_Enrolled(fingerprint))
    assert verifier.verify("tpm", evidence, trusted).claims["ak_trust"] == "enrolled"
    other = Options(at=AT, tpm_enrolled_aks=_Enrolled(bytes(32)))
    assert verifier.verify("tpm", evidence, other).claims["ak_trust"] == "none"


def test_source_of_the_wrong_type_is_a_programming_error() -> None:
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    with pytest.raises(TypeError):
        verifier.verify("tpm", evidence, Options(at=AT, tpm_enrolled_aks=object()))  # type: ignore[arg-type]


def _with_untrusted_cert(evidence: dict[str, Any]) -> None:
    _set(evidence, _der(_ak_cert(_ca("unknown CA"), RSA_KEY)), "ak_certificate")


def _with_cert_for_other_key(evidence: dict[str, Any]) -> None:
    _set(evidence, _der(_ak_cert(_ca("unknown CA"), OTHER_RSA_KEY)), "ak_certificate")


def _with_garbage_cert(evidence: dict[str, Any]) -> None:
    _set(evidence, b"\x30\x03\x02\x01\x00", "ak_certificate")


# ---- negatives as named datasets ----


def _alter_pcr(evidence: dict[str, Any]) -> None:
    evidence["tpm_quote"]["pcrs"]["sha256"]["3"] = "ab" * 32


def _drop_pcr(evidence: dict[str, Any]) -> None:
    del evidence["tpm_quote"]["pcrs"]["sha256"]["3"]


def _other_ak(evidence: dict[str, Any]) -> None:
    _set(evidence, _quotes.spki(OTHER_RSA_KEY), "ak_public")


def _signed_by_other_ak(evidence: dict[str, Any]) -> None:
    message = _b64(evidence, "tpm_quote", "message")
    _set(evidence, _quotes.sign(OTHER_RSA_KEY, message), "tpm_quote", "signature")


def _ecdsa_signature_for_rsa_ak(evidence: dict[str, Any]) -> None:
    message = _b64(evidence, "tpm_quote", "message")
    _set(evidence, _quotes.sign(EC_KEY, message), "tpm_quote", "signature")


def _flip_message_byte(evidence: dict[str, Any]) -> None:
    message = bytearray(_b64(evidence, "tpm_quote", "message"))
    message[30] ^= 1  # inside clockInfo
    _set(evidence, bytes(message), "tpm_quote", "message")


def _mutate(path: tuple[str, ...], change: Callable[[bytes], bytes]) -> Callable[[dict[str, Any]], None]:
    def apply(evidence: dict[str, Any]) -> None:
        _set(evidence, change(_b64(evidence, *path)), *path)

    return apply


MESSAGE = ("tpm_quote", "message")
SIGNATURE = ("tpm_quote", "signature")

NEGATIVES: dict[str, tuple[Callable[[dict[str, Any]], None], Reason, str]] = {
    "altered PCR value": (_alter_pcr, Reason.PCR_DIGEST_MISMATCH, "pcrDigest"),
    "quoted PCR missing": (_drop_pcr, Reason.MALFORMED_EVIDENCE, "sha256[3]"),
    "another AK presented": (_other_ak, Reason.SIGNATURE_INVALID, "TPMT_SIGNATURE"),
    "signed by another AK": (_signed_by_other_ak, Reason.SIGNATURE_INVALID, "TPMT_SIGNATURE"),
    "ECDSA signature, RSA AK": (_ecdsa_signature_for_rsa_ak, Reason.SIGNATURE_INVALID, "ECDSA"),
    "altered TPMS_ATTEST": (_flip_message_byte, Reason.SIGNATURE_INVALID, "TPMT_SIGNATURE"),
    "TPMS_ATTEST truncated": (_mutate(MESSAGE, lambda m: m[:-1]), Reason.MALFORMED_EVIDENCE, "pcrDigest"),
    "TPMS_ATTEST extended": (_mutate(MESSAGE, lambda m: m + b"\0"), Reason.MALFORMED_EVIDENCE, "trailing"),
    "TPMS_ATTEST empty": (_mutate(MESSAGE, lambda m: b""), Reason.MALFORMED_EVIDENCE, "magic"),
    "TPMS_ATTEST bad magic": (
        _mutate(MESSAGE, lambda m: b"\xff\x54\x43\x48" + m[4:]),
        Reason.MALFORMED_EVIDENCE,
        "TPM_GENERATED_VALUE",
    ),
    "TPMS_ATTEST certify type": (
        _mutate(MESSAGE, lambda m: m[:4] + b"\x80\x17" + m[6:]),
        Reason.UNSUPPORTED_FORMAT,
        "TPM_ST_ATTEST_QUOTE",
    ),
    "TPMT_SIGNATURE truncated": (_mutate(SIGNATURE, lambda s: s[:-1]), Reason.MALFORMED_EVIDENCE, "sig"),
    "TPMT_SIGNATURE extended": (
        _mutate(SIGNATURE, lambda s: s + b"\0"),
        Reason.MALFORMED_EVIDENCE,
        "trailing",
    ),
    "unknown sigAlg": (
        _mutate(SIGNATURE, lambda s: b"\x00\x1b" + s[2:]),
        Reason.UNSUPPORTED_FORMAT,
        "sigAlg is 0x001b",
    ),
    "unknown signature hash": (
        _mutate(SIGNATURE, lambda s: s[:2] + b"\x00\x12" + s[4:]),
        Reason.UNSUPPORTED_FORMAT,
        "signature.hash is 0x0012",
    ),
    "ak_public not SPKI": (_mutate(("ak_public",), lambda k: k[:-3]), Reason.MALFORMED_EVIDENCE, "ak_public"),
    "AK certificate from unknown CA": (_with_untrusted_cert, Reason.UNTRUSTED_KEY, "does not chain"),
    "AK certificate for another key": (
        _with_cert_for_other_key,
        Reason.CERTIFICATE_INVALID,
        "expected the AK",
    ),
    "AK certificate not X.509": (_with_garbage_cert, Reason.CERTIFICATE_INVALID, "ak_certificate"),
}


@pytest.mark.parametrize("name", list(NEGATIVES))
def test_negative(name: str) -> None:
    change, reason, fragment = NEGATIVES[name]
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    change(evidence)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT, report_data=NONCE32))
    assert caught.value.reason is reason, caught.value.detail
    assert fragment in caught.value.detail


def _unknown_bank_selection() -> bytes:
    message = _quotes.attest(PCRS, NONCE32)
    # The first TPMS_PCR_SELECTION.hash follows magic, type, two TPM2Bs, clockInfo, firmwareVersion, count.
    offset = 4 + 2 + (2 + 34) + (2 + 32) + 17 + 8 + 4
    assert struct.unpack_from(">H", message, offset) == (0x000B,)
    return message[:offset] + b"\x00\x12" + message[offset + 2 :]


def test_unknown_pcr_bank_algorithm() -> None:
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32, message=_unknown_bank_selection())
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT))
    assert caught.value.reason is Reason.UNSUPPORTED_FORMAT
    assert "pcrSelections[0].hash is 0x0012" in caught.value.detail


EVIDENCE_SHAPES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no tpm_quote": (lambda e: e.pop("tpm_quote"), "tpm_quote"),
    "pcrs list of 23": (lambda e: e["tpm_quote"].update(pcrs=["00" * 32] * 23), "list of 23"),
    "pcrs not hex": (lambda e: e["tpm_quote"]["pcrs"]["sha256"].update({"0": "zz"}), "not hex"),
    "pcr of wrong size": (lambda e: e["tpm_quote"]["pcrs"]["sha256"].update({"0": "00" * 20}), "20 bytes"),
    "pcr values shifted": (_shift_pcr_boundary, "sha256[0] is 31 bytes"),
    # 64 characters, as many as a SHA-256 value, but fromhex skips the spaces: 31 bytes.
    "pcr with spaces": (
        lambda e: e["tpm_quote"]["pcrs"]["sha256"].update({"0": " " + "00" * 31 + " "}),
        "sha256[0] is 31 bytes",
    ),
    "pcr not a string": (lambda e: e["tpm_quote"]["pcrs"]["sha256"].update({"0": 0}), "is int"),
    "pcr index 24": (lambda e: e["tpm_quote"]["pcrs"]["sha256"].update({"24": "00" * 32}), "index is '24'"),
    "unknown bank": (lambda e: e["tpm_quote"]["pcrs"].update(sm3_256={}), "sm3_256"),
    "message not base64": (lambda e: e["tpm_quote"].update(message="***"), "base64"),
    "ak_public missing": (lambda e: e.pop("ak_public"), "ak_public"),
}


@pytest.mark.parametrize("name", list(EVIDENCE_SHAPES))
def test_malformed_evidence_json(name: str) -> None:
    change, fragment = EVIDENCE_SHAPES[name]
    evidence = _quotes.evidence(RSA_KEY, PCRS, NONCE32)
    change(evidence)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT))
    assert caught.value.reason is Reason.MALFORMED_EVIDENCE
    assert fragment in caught.value.detail


# ---- real vectors, broken ----


@pytest.fixture(scope="module")
def google_sha256(vectors: Path) -> dict[str, Any]:
    return decode((vectors / "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes()).evidences[1]


def test_google_wrong_nonce(google_sha256: dict[str, Any]) -> None:
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", google_sha256, Options(at=AT, report_data=bytes.fromhex("9008")))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH
    assert caught.value.detail == "TPMS_ATTEST.extraData is 9009, expected 9008"


def test_google_altered_pcr(google_sha256: dict[str, Any]) -> None:
    evidence = copy.deepcopy(google_sha256)
    evidence["tpm_quote"]["pcrs"]["sha256"]["4"] = "00" * 32
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT))
    assert caught.value.reason is Reason.PCR_DIGEST_MISMATCH


def test_google_event_log_that_does_not_replay(google_sha256: dict[str, Any], vectors: Path) -> None:
    evidence = copy.deepcopy(google_sha256)
    # A real UEFI log of another machine (go-tpm-tools rhel8-uefi.bin) against this quote's PCRs.
    _set(evidence, (vectors / "tpm/go-tpm-tools/rhel8-uefi.bin").read_bytes(), "event_log")
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT))
    assert caught.value.reason is Reason.EVENTLOG_MISMATCH
    assert "sha256 register 0" in caught.value.detail


def test_google_event_log_truncated(google_sha256: dict[str, Any]) -> None:
    evidence = copy.deepcopy(google_sha256)
    _set(evidence, _b64(evidence, "event_log")[:-10], "event_log")
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=AT))
    assert caught.value.reason is Reason.MALFORMED_EVIDENCE


def test_verify_cli_json_shape(google_sha256: dict[str, Any], tmp_path: Path) -> None:
    """The claims document is JSON-serialisable as `verifier verify` prints it."""
    result = verifier.verify("tpm", google_sha256, Options(at=AT))
    assert json.loads(json.dumps(result.to_json()))["claims"]["ak_trust"] == "certificate"
