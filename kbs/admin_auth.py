"""Admin authorisation: `Authorization: Bearer <JWT>` signed by a key the configuration trusts (EdDSA or ES256),
with a `role` claim checked against each endpoint's permission. No key configured: the admin API is off.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .errors import KbsError

__all__ = ["ROLES", "AdminAuthority", "AdminIdentity", "Permission"]

ALGORITHMS = ["EdDSA", "ES256"]
AUDIENCE = "veritee-kbs-admin"


class Permission(StrEnum):
    RESOURCE_WRITE = "resource:write"
    RESOURCE_READ = "resource:read"
    POLICY_WRITE = "policy:write"
    POLICY_READ = "policy:read"
    REFERENCE_WRITE = "reference:write"
    REFERENCE_READ = "reference:read"
    AUDIT_READ = "audit:read"
    KEYS_ROTATE = "keys:rotate"


# role -> permissions. "admin" may do everything; narrower roles for automation.
ROLES: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "resource-admin": frozenset({Permission.RESOURCE_WRITE, Permission.RESOURCE_READ}),
    "policy-admin": frozenset(
        {Permission.POLICY_WRITE, Permission.POLICY_READ, Permission.REFERENCE_WRITE, Permission.REFERENCE_READ}
    ),
    "auditor": frozenset({Permission.AUDIT_READ, Permission.POLICY_READ, Permission.REFERENCE_READ}),
}

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class AdminIdentity:
    subject: str
    role: str


class AdminAuthority:
    def __init__(self, keys: Sequence[PublicKey]) -> None:
        self._keys = list(keys)

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> AdminAuthority:
        keys: list[PublicKey] = []
        for path in paths:
            key = serialization.load_pem_public_key(path.read_bytes())
            if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
                raise TypeError(f"admin key {path}: ECDSA keys must be P-256 (ES256)")
            if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
                raise TypeError(f"admin key {path} is {type(key).__name__}, expected Ed25519 or P-256")
            keys.append(key)
        return cls(keys)

    def authorise(self, authorization: str | None, permission: Permission) -> AdminIdentity:
        if not self._keys:
            raise KbsError.admin_denied("the admin API is disabled: no admin public key is configured")
        if not authorization or not authorization.startswith("Bearer "):
            raise KbsError.unauthorized("admin call without an Authorization: Bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        claims = self._verify(token)
        role = claims.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise KbsError.admin_denied(f"admin token role is {role!r}, expected one of {sorted(ROLES)}")
        if permission not in ROLES[role]:
            raise KbsError.admin_denied(f"role {role!r} lacks permission {permission.value}")
        return AdminIdentity(subject=str(claims.get("sub", "admin")), role=role)

    def _verify(self, token: str) -> dict[str, Any]:
        last: Exception | None = None
        for key in self._keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=ALGORITHMS,
                    audience=AUDIENCE,
                    options={"require": ["exp", "iat"]},
                    leeway=5,
                )
            except jwt.ExpiredSignatureError as exc:
                raise KbsError.unauthorized("admin token expired") from exc
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise KbsError.unauthorized(f"admin token rejected: {exc}") from exc
            return claims
        raise KbsError.unauthorized(f"admin token not signed by a configured admin key ({last})")


def mint_token(private_key: Any, *, role: str = "admin", subject: str = "admin", ttl_seconds: int) -> str:
    """An admin JWT (for `kbs init` and `kbs admin token`)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {sorted(ROLES)}")
    algorithm = "EdDSA" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "ES256"
    now = int(time.time())
    payload = {"sub": subject, "role": role, "aud": AUDIENCE, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(payload, private_key, algorithm=algorithm)
