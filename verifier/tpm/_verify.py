"""Verification of a TPM 2.0 quote: the AK signature, pcrDigest, the bindings, AK trust, the event log.

Steps, in order (each raises VerifierError with its reason code):
  1. parse the evidence JSON, TPMS_ATTEST and TPMT_SIGNATURE (FormatError);
  2. the signature over the exact TPMS_ATTEST bytes with the AK (signature_invalid);
  3. pcrDigest == H_sig(selected PCR values in selection order), where H_sig is the signature scheme's hash
     whatever the bank (TPM 2.0 Part 3 §18.4 TPM2_Quote; pcr_digest_mismatch);
  4. extraData == the expected report data, exactly (report_data_mismatch);
  5. PCR8 of the SHA-256 bank == SHA-256(32 zero bytes || init-data digest) (init_data_mismatch);
  6. AK trust: an AK certificate chaining to pinned/configured roots, else an enrolment source, else none
     (untrusted_key / certificate_expired / certificate_invalid);
  7. the event log replays to the quoted PCRs (eventlog_mismatch).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .. import sources
from .._common import check_init_data, check_report_data
from ..errors import FormatError, Reason, VerificationError
from ..eventlog import check_replay, parse
from ..options import Options
from ..result import Verified
from ._binding import INIT_DATA_BANK, INIT_DATA_PCR, init_data
from ._chain import (
    Path,
    certification_path,
    check_validity,
    describe,
    load_certificates,
    pinned_intermediates,
    pinned_roots,
    spki_der,
)
from ._claims import AkTrust, TpmClaims
from ._evidence import PcrBank, TpmEvidence, parse_evidence
from ._structures import Attest, PcrSelection, Signature, parse_attest, parse_signature

__all__ = ["verify", "verify_quote_signature"]


_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - SHA-1 PCR banks and quotes exist (Google vTPM); policy judges them
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

_HASHLIB = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

# The signature schemes' parameter objects, made once per hash (constants; making them costs about a microsecond
# per verification, ECDSA's most).
_ECDSA = {name: ec.ECDSA(algorithm) for name, algorithm in _HASHES.items()}
_PKCS1V15 = padding.PKCS1v15()
# Part 1 §B.7: RSAPSS salt is as long as the hash when the key allows; AUTO accepts what was used.
_PSS = {name: padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO) for name, algorithm in _HASHES.items()}

AkPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class _Ak:
    key: AkPublicKey
    ecc: bool  # an ECC key (else RSA)
    sha256: bytes  # of the DER SubjectPublicKeyInfo: the `ak_sha256` claim


@functools.lru_cache(maxsize=1024)
def _load_ak(der: bytes) -> _Ak:
    """The AK from its DER SubjectPublicKeyInfo, parsed and hashed once per key (a broker sees the same AKs
    often)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(f"tpm evidence: ak_public is not a DER SubjectPublicKeyInfo ({exc})") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise FormatError(
            f"tpm evidence: ak_public is a {type(key).__name__}, expected an RSA or ECC key",
            Reason.UNSUPPORTED_FORMAT,
        )
    return _Ak(key=key, ecc=isinstance(key, ec.EllipticCurvePublicKey), sha256=hashlib.sha256(der).digest())


def _der_integer(value: bytes) -> bytes:
    """A non-negative big-endian integer as a DER INTEGER (X.690 §8.3): minimal octets, a leading zero octet
    when the top bit is set (it would read as negative)."""
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return b"\x02%c%b" % (len(value), value)


def _ecdsa_der(r: bytes, s: bytes) -> bytes:
    """TPMS_SIGNATURE_ECC's r and s as the DER Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER } (RFC 3279
    §2.2.3) that `cryptography` verifies: what encode_dss_signature makes from two ints, in half its time.
    r and s are at most MAX_ECC_PARAMETER (66) octets, so the body fits a one-octet long-form length."""
    body = _der_integer(r) + _der_integer(s)
    return (b"\x30%c" % len(body) if len(body) < 0x80 else b"\x30\x81%c" % len(body)) + body


def verify_quote_signature(key: AkPublicKey, signature: Signature, message: bytes) -> None:
    """TPMT_SIGNATURE over TPMS_ATTEST: RSASSA-PKCS1-v1_5, RSASSA-PSS or ECDSA with the signature's hash."""
    _check_signature(key, isinstance(key, ec.EllipticCurvePublicKey), signature, message)


def _check_signature(key: AkPublicKey, ecc: bool, signature: Signature, message: bytes) -> None:
    """`verify_quote_signature` with the key's kind known (an AK's is found once, when it is loaded: an
    isinstance check against cryptography's key ABCs costs a fifth of a microsecond)."""
    try:
        if signature.scheme == "ecdsa":
            if not ecc:
                raise VerificationError(Reason.SIGNATURE_INVALID, "TPMT_SIGNATURE.sigAlg is ECDSA, the AK is RSA")
            der = _ecdsa_der(signature.ecdsa_r, signature.ecdsa_s)
            cast(ec.EllipticCurvePublicKey, key).verify(der, message, _ECDSA[signature.hash])
            return
        if ecc:
            raise VerificationError(
                Reason.SIGNATURE_INVALID,
                f"TPMT_SIGNATURE.sigAlg is {signature.scheme.upper()}, the AK is ECC",
            )
        pad = _PKCS1V15 if signature.scheme == "rsassa" else _PSS[signature.hash]
        cast(rsa.RSAPublicKey, key).verify(signature.rsa_signature, message, pad, _HASHES[signature.hash])
    except InvalidSignature as exc:
        raise VerificationError(
            Reason.SIGNATURE_INVALID,
            f"TPMT_SIGNATURE ({signature.scheme}, {signature.hash}) does not verify over TPMS_ATTEST with the AK",
        ) from exc


def _quoted_pcrs(attest: Attest, evidence: TpmEvidence, hash_name: str) -> dict[str, PcrBank]:
    """The evidence's PCR values for each TPMS_PCR_SELECTION of the quote, by bank, checked against pcrDigest =
    H_sig(the values in selection order) (Part 3 §18.4): the signing scheme's hash, whatever the bank."""
    quoted: dict[str, PcrBank] = {}
    hashed = b""  # the values in selection order (one bank's bytes as they are: b"" + x is x)
    for selection in attest.pcr_selection:
        bank = evidence.pcrs.get(selection.bank)
        if bank is None or bank.indices != selection.indices:
            bank = _pick(selection, bank)
        quoted[selection.bank] = bank
        hashed += bank.concatenated
    computed = _HASHLIB[hash_name](hashed).digest()
    if computed != attest.pcr_digest:
        raise VerificationError(
            Reason.PCR_DIGEST_MISMATCH,
            f"TPMS_QUOTE_INFO.pcrDigest is {attest.pcr_digest.hex()}, the given PCR values hash "
            f"({hash_name}) to {computed.hex()}",
        )
    return quoted


def _pick(selection: PcrSelection, bank: PcrBank | None) -> PcrBank:
    """The selected PCRs of a bank that carries others too (or FormatError when one is missing)."""
    values = []
    for index in selection.indices:
        value = None if bank is None else bank.value(index)
        if value is None:
            raise FormatError(
                f"tpm evidence: PCR {selection.bank}[{index}] is selected by TPMS_QUOTE_INFO.pcrSelect "
                "but missing from tpm_quote.pcrs"
            )
        values.append(value)
    return PcrBank.from_values(selection.bank, selection.indices, values)


def _check_init_data(quoted: Mapping[str, PcrBank], digest: bytes) -> None:
    bank = quoted.get(INIT_DATA_BANK)
    pcr8 = None if bank is None else bank.value(INIT_DATA_PCR)
    if pcr8 is None:
        raise VerificationError(
            Reason.INIT_DATA_MISMATCH,
            f"init-data is expected but PCR {INIT_DATA_BANK}[{INIT_DATA_PCR}] is not quoted",
        )
    check_init_data(f"PCR {INIT_DATA_BANK}[{INIT_DATA_PCR}]", pcr8, init_data(digest))


class _AkPath(NamedTuple):
    """An AK certificate's path to a trusted root and the period in which every certificate on it is valid."""

    path: Path
    not_before: datetime  # the latest notBefore on the path
    not_after: datetime  # the earliest notAfter on the path


@functools.lru_cache(maxsize=1024)
def _ak_certificate_path(
    ak_certificate: bytes | None, ak_public: bytes, given: tuple[bytes, ...], trust: tuple[bytes, ...]
) -> _AkPath | None:
    """The AK certificate's path to a trusted root, by signatures, or None when no certificate is for this AK.

    Cached on the raw bytes (a broker sees the same AK and configuration again and again); dates are judged by
    the caller at each verification's time (against the path's common validity period: one comparison where
    judging each certificate costs one per certificate)."""
    certificates = tuple(c for blob in given for c in load_certificates(blob, "--cert certificate"))
    ak_cert: x509.Certificate | None
    if ak_certificate is not None:
        (ak_cert,) = load_certificates(ak_certificate, "tpm evidence: ak_certificate")
        if spki_der(ak_cert) != ak_public:
            raise VerificationError(
                Reason.CERTIFICATE_INVALID,
                f"ak_certificate ({describe(ak_cert)}) certifies key sha256 "
                f"{hashlib.sha256(spki_der(ak_cert)).hexdigest()}, expected the AK "
                f"{hashlib.sha256(ak_public).hexdigest()}",
            )
    else:
        ak_cert = next((c for c in certificates if spki_der(c) == ak_public), None)
    if ak_cert is None:
        return None
    configured = tuple(c for blob in trust for c in load_certificates(blob, "tpm trust anchor"))
    anchors = pinned_roots() + configured
    path = certification_path(ak_cert, pinned_intermediates() + certificates, anchors, "AK certificate")
    return _AkPath(path, max(link[0] for link in path), min(link[1] for link in path))


def _ak_trust(evidence: TpmEvidence, ak_sha256: bytes, options: Options) -> AkTrust:
    # Without an AK certificate in the evidence or the options there is no path to look up.
    found = None
    if evidence.ak_certificate is not None or options.certificates:
        found = _ak_certificate_path(
            evidence.ak_certificate,
            evidence.ak_public,
            tuple(options.certificates),
            tuple(options.trust.get("tpm", ())),
        )
    if found is not None:
        if not found.not_before <= options.at <= found.not_after:
            check_validity(found.path, options.at, "AK certificate")  # raises, naming the certificate
        return AkTrust.CERTIFICATE
    if options.tpm_enrolled_aks is not None:
        source = sources.tpm_enrolled_aks(options.tpm_enrolled_aks)
        if source.is_enrolled(ak_sha256):
            return AkTrust.ENROLLED
    return AkTrust.NONE


def _replay_events(data: bytes, quoted: Mapping[str, PcrBank]) -> tuple[Mapping[str, object], ...]:
    """Parse and replay the TCG2 log; every register that it extends and the quote carries must match
    (eventlog_mismatch otherwise, or when none is in common). The parsed events become the `eventlog` claim."""
    log = parse(data, "tcg2")
    check_replay(log, {name: bank.values() for name, bank in quoted.items()})
    events = log.to_json()["events"]
    assert isinstance(events, list)
    return tuple(events)


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Verify TPM evidence; evidence and claims as docs/evidence.md describes them."""
    if isinstance(evidence, bytes | bytearray):
        raise FormatError("tpm evidence is a JSON object, not raw bytes", Reason.UNSUPPORTED_FORMAT)
    parsed = parse_evidence(evidence)
    attest = parse_attest(parsed.message)
    signature = parse_signature(parsed.signature)
    ak = _load_ak(parsed.ak_public)
    _check_signature(ak.key, ak.ecc, signature, attest.raw)
    quoted = _quoted_pcrs(attest, parsed, signature.hash)
    check_report_data("TPMS_ATTEST.extraData", attest.extra_data, options)
    if options.init_data_digest is not None:
        _check_init_data(quoted, options.init_data_digest)
    trust = _ak_trust(parsed, ak.sha256, options)
    events = None
    if parsed.event_log is not None:
        events = _replay_events(parsed.event_log, quoted)
    # Positional, in field order (attest, signature, pcrs, ak_sha256, ak_trust, eventlog): cheaper than keywords.
    claims = TpmClaims(attest, signature, quoted, ak.sha256, trust, events)
    return Verified("tpm", claims.to_json(), attest.extra_data)  # tee, claims, report_data
