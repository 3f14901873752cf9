"""EAR (EAT Attestation Result, draft-fv-rats-ear) tokens: ES256 JWTs carrying the appraisal.

The broker owns the signing keys (they persist and rotate); this module only builds, signs and checks tokens,
with the time passed in. `verify_token` returns a typed `Ear`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .appraisal import ANNOTATIONS, Appraisal, Status
from .errors import TokenError, UnknownKeyError

__all__ = [
    "EAR_PROFILE",
    "DeviceAppraisal",
    "Ear",
    "EarSubmod",
    "Signer",
    "TokenError",
    "UnknownKeyError",
    "claims_digest",
    "ear_claims",
    "issue",
    "jwk_of",
    "sign",
    "verify_token",
]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
SUBMOD = "cpu0"
ALGORITHM = "ES256"
STATUSES = frozenset(status.value for status in Status)


@dataclass(frozen=True)
class Signer:
    kid: str
    key: ec.EllipticCurvePrivateKey


def jwk_of(kid: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    jwk: dict[str, str] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
    jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    return jwk


@dataclass(frozen=True)
class DeviceAppraisal:
    """A device's appraisal in the EAR, beside the primary evidence's `cpu0`: trustee names them `<class><n>`
    (`gpu0`, `gpu1`, ...). A device whose evidence was refused keeps its submod, contraindicated, with `error`."""

    appraisal: Appraisal
    # {"reason": <verifier reason code>, "detail": ...} when the device's evidence did not verify.
    error: Mapping[str, str] | None = None


def _submod_claims(appraisal: Appraisal) -> dict[str, object]:
    return {
        "ear.status": appraisal.status.value,
        "ear.trustworthiness-vector": dict(appraisal.vector),
        "ear.appraisal-policy-id": appraisal.policy_id,
        "ear.veraison.annotated-evidence": dict(appraisal.annotated_evidence),
    }


def ear_claims(
    appraisal: Appraisal,
    *,
    issuer: str,
    verifier_id: Mapping[str, str],
    now: datetime,
    ttl_seconds: int,
    devices: Mapping[str, DeviceAppraisal] | None = None,
) -> dict[str, object]:
    """The claims-set of an EAR, ready to `sign`: the submodule `cpu0` for the appraisal of the primary evidence
    (carrying its annotated evidence), then one per device (`devices`, by submod name: `gpu0`, ...)."""
    iat = int(now.timestamp())
    submods: dict[str, dict[str, object]] = {SUBMOD: _submod_claims(appraisal)}
    for name, device in (devices or {}).items():
        if name in submods:
            raise ValueError(f"submod {name!r} is given twice")
        submods[name] = _submod_claims(device.appraisal)
        if device.error is not None:
            submods[name]["ear.veritee.error"] = dict(device.error)
    return {
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "exp": iat + ttl_seconds,
        "iss": issuer,
        "ear.verifier-id": dict(verifier_id),
        "submods": submods,
    }


def sign(signer: Signer, claims: Mapping[str, object]) -> str:
    """An ES256 JWT of an EAR claims-set, with the signer's `kid` in its header."""
    return jwt.encode(dict(claims), signer.key, algorithm=ALGORITHM, headers={"kid": signer.kid})


def issue(
    signer: Signer,
    *,
    appraisal: Appraisal,
    issuer: str,
    verifier_id: Mapping[str, str],
    now: datetime,
    ttl_seconds: int,
    annotated_evidence: Mapping[str, object] | None = None,
) -> str:
    """`ear_claims` signed with `sign` (annotated_evidence: instead of the appraisal's own)."""
    if annotated_evidence is not None:
        appraisal = replace(appraisal, annotated_evidence=annotated_evidence)
    claims = ear_claims(appraisal, issuer=issuer, verifier_id=verifier_id, now=now, ttl_seconds=ttl_seconds)
    return sign(signer, claims)


@dataclass(frozen=True)
class EarSubmod:
    """One appraisal in an EAR (draft-fv-rats-ear section 3.2): its status, vector, policy and the evidence."""

    status: Status
    vector: Mapping[str, int]
    policy_id: str
    annotated_evidence: Mapping[str, object]

    @property
    def tee(self) -> str | None:
        """The TEE whose claims the annotated evidence carries (its one key that is not an annotation)."""
        return next((key for key in self.annotated_evidence if key not in ANNOTATIONS), None)

    @property
    def claims(self) -> Mapping[str, object]:
        """The verified claims of the TEE (docs/evidence.md)."""
        tee = self.tee
        value = None if tee is None else self.annotated_evidence.get(tee)
        return value if isinstance(value, dict) else {}

    @property
    def runtime_data(self) -> Mapping[str, object]:
        """The runtime data the evidence was bound to: the nonce and the `tee-pubkey` to encrypt secrets to."""
        value = self.annotated_evidence.get("runtime_data_claims")
        return value if isinstance(value, dict) else {}


def _submod(name: str, value: object) -> EarSubmod:
    if not isinstance(value, dict):
        raise TokenError(f"token submod {name!r} is not an object")
    status = value.get("ear.status")
    vector = value.get("ear.trustworthiness-vector")
    policy_id = value.get("ear.appraisal-policy-id")
    evidence = value.get("ear.veraison.annotated-evidence")
    if status not in STATUSES or not isinstance(vector, dict) or not isinstance(policy_id, str):
        raise TokenError(f"token submod {name!r} is not an EAR appraisal (ear.status, vector, policy id)")
    if not isinstance(evidence, dict):
        raise TokenError(f"token submod {name!r} carries no annotated evidence")
    return EarSubmod(Status(status), vector, policy_id, evidence)


@dataclass(frozen=True)
class Ear(Mapping[str, Any]):
    """A verified EAR token: its typed fields, and (as a read-only mapping) the claims exactly as signed, which
    resource policies see as `input` and the audit log digests."""

    issuer: str
    issued_at: int
    expires_at: int
    verifier_id: Mapping[str, object]
    submods: Mapping[str, EarSubmod]
    raw: Mapping[str, Any]

    @property
    def submod(self) -> EarSubmod:
        """The appraisal of the primary evidence (`cpu0`; devices have submods of their own, `gpu0`, ...)."""
        found = self.submods.get(SUBMOD)
        if found is None:
            raise TokenError(f"token has no {SUBMOD!r} submod")
        return found

    @property
    def statuses(self) -> dict[str, Status]:
        return {name: submod.status for name, submod in self.submods.items()}

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def verify_token(
    token: str,
    keys: Mapping[str, ec.EllipticCurvePublicKey],
    *,
    now: datetime,
    issuer: str | None = None,
) -> Ear:
    """Check signature (by `kid`), expiry at `now`, profile and issuer; return the typed EAR."""
    header = _unverified_header(token)
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"token alg is {header.get('alg')!r}, expected {ALGORITHM}")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise UnknownKeyError(f"token kid {header.get('kid')!r} is not a known signing key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "require": ["exp", "iat", "iss"]},
            issuer=issuer,
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"token rejected: {exc}") from exc
    if claims["exp"] <= now.timestamp():
        raise TokenError("token expired")
    submods = claims.get("submods")
    if claims.get("eat_profile") != EAR_PROFILE or not isinstance(submods, dict):
        raise TokenError("token is not an EAR attestation result")
    verifier_id = claims.get("ear.verifier-id")
    return Ear(
        issuer=str(claims["iss"]),
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        verifier_id=verifier_id if isinstance(verifier_id, dict) else {},
        submods={name: _submod(name, value) for name, value in submods.items()},
        raw=claims,
    )


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, only to choose the key by its `kid`: PyJWT's `get_unverified_header` would decode and check
    the whole token (a few kB of EAR, character by character) once more before `jwt.decode` does it again. The
    segment read here is the one `jwt.decode` then checks and verifies, so a lenient read here admits nothing."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise TokenError(f"token is malformed: header is not base64url JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise TokenError("token is malformed: header is not a JSON object")
    return header


def claims_digest(claims: Mapping[str, object]) -> str:
    """A stable digest of a token's claims for the audit log (the token itself is never logged)."""
    return hashlib.sha256(json.dumps(dict(claims), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
