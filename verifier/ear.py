"""EAR (EAT Attestation Result, draft-fv-rats-ear) tokens: ES256 JWTs carrying the appraisal.

The broker owns the signing keys (they persist and rotate); this module only builds, signs and checks tokens,
with the time passed in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .appraisal import Appraisal

__all__ = [
    "EAR_PROFILE",
    "Signer",
    "Submod",
    "TokenError",
    "UnknownKeyError",
    "claims_digest",
    "issue",
    "jwk_of",
    "verify_token",
]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
SUBMOD = "cpu0"
ALGORITHM = "ES256"


class TokenError(Exception):
    """A token that is malformed, badly signed, from an unknown key, or expired."""


class UnknownKeyError(TokenError):
    """The token's `kid` is not among the keys given (a caller may reload its keys once and retry)."""


@dataclass(frozen=True)
class Signer:
    kid: str
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Submod:
    """A device's appraisal in the EAR, beside the primary evidence's `cpu0`: trustee names them `<class><n>`
    (`gpu0`, `gpu1`, ...). A device whose evidence was refused keeps its submod, contraindicated, with `error`."""

    appraisal: Appraisal
    annotated_evidence: Mapping[str, object]
    # {"reason": <verifier reason code>, "detail": ...} when the device's evidence did not verify.
    error: Mapping[str, str] | None = None


def _submod(appraisal: Appraisal, annotated_evidence: Mapping[str, object]) -> dict[str, object]:
    return {
        "ear.status": appraisal.status.value,
        "ear.trustworthiness-vector": dict(appraisal.vector),
        "ear.appraisal-policy-id": appraisal.policy_id,
        "ear.veraison.annotated-evidence": dict(annotated_evidence),
    }


def jwk_of(kid: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    jwk: dict[str, str] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
    jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    return jwk


def issue(
    signer: Signer,
    *,
    appraisal: Appraisal,
    annotated_evidence: Mapping[str, object],
    issuer: str,
    verifier_id: Mapping[str, str],
    now: datetime,
    ttl_seconds: int,
    devices: Mapping[str, Submod] | None = None,
) -> str:
    """The signed EAR: `cpu0` for the primary evidence, then one submod per device (`devices`, by submod name)."""
    iat = int(now.timestamp())
    submods = {SUBMOD: _submod(appraisal, annotated_evidence)}
    for name, device in (devices or {}).items():
        if name in submods:
            raise ValueError(f"submod {name!r} is given twice")
        submods[name] = _submod(device.appraisal, device.annotated_evidence)
        if device.error is not None:
            submods[name]["ear.veritee.error"] = dict(device.error)
    payload = {
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "exp": iat + ttl_seconds,
        "iss": issuer,
        "ear.verifier-id": dict(verifier_id),
        "submods": submods,
    }
    return jwt.encode(payload, signer.key, algorithm=ALGORITHM, headers={"kid": signer.kid})


def verify_token(
    token: str,
    keys: Mapping[str, ec.EllipticCurvePublicKey],
    *,
    now: datetime,
    issuer: str | None = None,
) -> dict[str, Any]:
    """Check signature (by `kid`), expiry at `now`, profile and issuer; return the claims."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(f"token is malformed: {exc}") from exc
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
    if claims.get("eat_profile") != EAR_PROFILE or not isinstance(claims.get("submods"), dict):
        raise TokenError("token is not an EAR attestation result")
    return claims


def claims_digest(claims: Mapping[str, object]) -> str:
    """A stable digest of a token's claims for the audit log (the token itself is never logged)."""
    return hashlib.sha256(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
