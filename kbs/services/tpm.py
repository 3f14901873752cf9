"""TPM AK enrolment by credential activation (TPM 2.0 Part 1 "Credential Protection"; docs/protocol.md).

    guest                                   broker
    POST /kbs/v0/tpm/enroll  ---------->    AK TPMT_PUBLIC: restricted signing key, fixedTPM/fixedParent;
      {ak_public, ek_certificate,           EK certificate chains to a TPM vendor root (pinned + trust.tpm);
       ek_public}                           TPM2_MakeCredential(EK, secret, name(AK)); keeps SHA-256(secret)
                             <----------    {id, credential_blob, encrypted_secret, expires_in}
    TPM2_ActivateCredential(AK, EK)         (only the TPM holding that EK and an object named name(AK))
    POST /kbs/v0/tpm/activate ---------->   SHA-256(secret) matches, challenge not expired, used once:
      {id, secret}                          the AK is enrolled; its quotes verify with ak_trust "enrolled"
                             <----------    {ak_sha256}

The verifier learns of enrolled AKs through `EnrolledAkRegistry`, its `Options.tpm_enrolled_aks`. Every activation,
accepted or refused, is audited.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from verifier import VerifierError
from verifier.tpm import check_ak_public, make_credential, parse_public, verify_ek_certificate

from ..api.schemas import TpmActivateRequest, TpmCredentialChallenge, TpmEnrolled, TpmEnrollRequest
from ..errors import KbsError
from ..storage import Store
from ..tables import TpmAk, TpmEnrollment
from .audit import AuditLog, AuditRecord

__all__ = ["CHALLENGE_TTL_SECONDS", "EnrolledAkRegistry", "TpmEnrollmentService"]

CHALLENGE_TTL_SECONDS = 300
SECRET_BYTES = 32
MAX_FIELD = 16 * 1024


class EnrolledAkRegistry:
    """`verifier.tpm.EnrolledAks` over the broker's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def is_enrolled(self, ak_sha256: bytes) -> bool:
        return self.store.tpm_ak_enrolled(ak_sha256.hex())


def _decode(value: str | None, what: str) -> bytes:
    if not value:
        raise KbsError.invalid_request(f"{what} is missing")
    if len(value) > MAX_FIELD:
        raise KbsError.invalid_request(f"{what} is {len(value)} characters, at most {MAX_FIELD}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KbsError.invalid_request(f"{what} is not standard base64") from exc


class TpmEnrollmentService:
    def __init__(self, store: Store, trust: tuple[bytes, ...], audit: AuditLog) -> None:
        self.store = store
        self.trust = trust
        self._audit = audit

    def enroll(self, request: TpmEnrollRequest, now: float) -> TpmCredentialChallenge:
        try:
            ak = parse_public(_decode(request.ak_public, "ak_public"))
            check_ak_public(ak)
            ek_certificate = _decode(request.ek_certificate, "ek_certificate")
            certificate = verify_ek_certificate(ek_certificate, self.trust, datetime.fromtimestamp(now, UTC))
            ek_key = certificate.public_key()
            if not isinstance(ek_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                raise KbsError.invalid_request("TPM enrolment refused: the EK certificate holds no RSA or ECC key")
            ek = parse_public(_decode(request.ek_public, "ek_public")) if request.ek_public else None
        except VerifierError as exc:
            raise KbsError.attestation_failed(f"TPM enrolment refused: {exc.reason.value}: {exc.detail}") from exc
        if ek is not None and ek.public_key != ek_key:
            raise KbsError.attestation_failed("TPM enrolment refused: ek_public is not the EK certificate's key")
        secret = secrets.token_bytes(SECRET_BYTES)
        try:
            credential = make_credential(ek if ek is not None else ek_key, ak.name, secret)
        except ValueError as exc:
            raise KbsError.invalid_request(f"TPM enrolment refused: {exc}") from exc
        enrollment_id = secrets.token_urlsafe(32)
        self.store.add_tpm_enrollment(
            TpmEnrollment(
                id=enrollment_id,
                ak_sha256=hashlib.sha256(ak.spki_der()).hexdigest(),
                ek_certificate_sha256=hashlib.sha256(ek_certificate).hexdigest(),
                secret_sha256=hashlib.sha256(secret).hexdigest(),
                created_at=now,
                expires_at=now + CHALLENGE_TTL_SECONDS,
            )
        )
        return TpmCredentialChallenge(
            id=enrollment_id,
            credential_blob=base64.b64encode(credential.credential_blob).decode(),
            encrypted_secret=base64.b64encode(credential.encrypted_secret).decode(),
            expires_in=CHALLENGE_TTL_SECONDS,
        )

    def activate(self, request: TpmActivateRequest, now: float) -> TpmEnrolled:
        """The enrolled AK. The challenge is read, the answer checked with no transaction open, then one write
        settles it: an answer to an open challenge consumes it whatever its outcome (a wrong secret or an expired
        challenge refused, the AK enrolled otherwise), audited in the same write. An answer that cannot be checked (a
        missing or malformed secret, an unknown challenge) consumes nothing; its refusal is audited in a write of its
        own."""
        target = f"enrollment:{request.id[:16]}"
        try:
            secret = _decode(request.secret, "secret")
            row = self.store.tpm_enrollment(request.id)
            if row is None:
                raise _already_answered()
        except KbsError as exc:
            self._audit.record(_refusal(target, exc, now))
            raise
        refused: KbsError | None = None
        if row.expires_at <= now:
            refused = _already_answered()
        elif not hmac.compare_digest(hashlib.sha256(secret).hexdigest(), row.secret_sha256):
            refused = KbsError.attestation_failed("TPM credential activation failed: the secret does not match")
        if refused is None:
            ak = TpmAk(ak_sha256=row.ak_sha256, ek_certificate_sha256=row.ek_certificate_sha256, enrolled_at=now)
            outcome = AuditRecord("tpm-guest", "tpm.enroll", f"ak:{row.ak_sha256}", "ok", now)
        else:
            ak, outcome = None, _refusal(target, refused, now)
        lost = _already_answered()
        if not self.store.answer_tpm_enrollment(row.id, ak, outcome, _refusal(target, lost, now)):
            raise lost  # another answer took the challenge between the read and this write
        if refused is not None:
            raise refused
        return TpmEnrolled(ak_sha256=row.ak_sha256)


def _already_answered() -> KbsError:
    return KbsError.unauthorized("unknown, expired or already answered TPM enrolment: enroll again")


def _refusal(target: str, error: KbsError, now: float) -> AuditRecord:
    return AuditRecord("tpm-guest", "tpm.enroll", target, "refused", now, reason=error.variant)
