"""The token signing keys: ES256 keys kept sealed in the database, shared by every replica.

The newest unretired key signs; a rotated key stays in the JWKS for the overlap so its tokens keep verifying.
"""

from __future__ import annotations

import secrets
import threading
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.ear import Signer, jwk_of

from ._audit_chain import AuditRecord
from .sealing import Sealer
from .storage import Store
from .tables import SigningKey

__all__ = ["KeyRing"]

_CACHE_SECONDS = 5.0


def _new_key(now: float, sealer: Sealer) -> tuple[SigningKey, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    kid = secrets.token_hex(8)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    row = SigningKey(
        kid=kid, sealed_private_key=sealer.seal(der, f"signing-key:{kid}"), public_pem=public_pem, created_at=now
    )
    return row, key


class KeyRing:
    """Loads keys from the store (cached for a few seconds, so a rotation on one replica reaches the others)."""

    def __init__(self, store: Store, sealer: Sealer, overlap_seconds: int) -> None:
        self._store = store
        self._sealer = sealer
        self._overlap = overlap_seconds
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._signer: Signer | None = None
        self._public: dict[str, ec.EllipticCurvePublicKey] = {}

    def ensure(self) -> None:
        """Create the first signing key if the database has none."""
        if not any(k.retired_at is None for k in self._store.signing_keys()):
            row, _ = _new_key(time.time(), self._sealer)
            self._store.add_first_signing_key(row)
        self._refresh(force=True)

    def rotate(self, actor: str) -> str:
        """A new signing key, the others retired, audited under `actor` in the same transaction; its kid."""
        now = time.time()
        row, _ = _new_key(now, self._sealer)
        self._store.add_signing_key(row, now, AuditRecord(actor, "signing-key.rotate", row.kid, "ok", now))
        self._refresh(force=True)
        return row.kid

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._loaded_at < _CACHE_SECONDS:
                return
            wall = time.time()
            rows = self._store.signing_keys()
            active = [r for r in rows if r.retired_at is None]
            if not active:
                raise RuntimeError("no active token signing key in the database (run the broker once to create it)")
            newest = active[-1]
            if self._signer is None or self._signer.kid != newest.kid:
                der = self._sealer.open(newest.sealed_private_key, f"signing-key:{newest.kid}")
                key = serialization.load_der_private_key(der, password=None)
                assert isinstance(key, ec.EllipticCurvePrivateKey)
                self._signer = Signer(kid=newest.kid, key=key)
            public: dict[str, ec.EllipticCurvePublicKey] = {}
            for r in rows:
                if r.retired_at is None or wall - r.retired_at < self._overlap:
                    loaded = serialization.load_pem_public_key(r.public_pem.encode())
                    assert isinstance(loaded, ec.EllipticCurvePublicKey)
                    public[r.kid] = loaded
            self._public = public
            self._loaded_at = now

    def reload(self) -> None:
        """Read the keys again now (a token names a kid this replica has not seen: another replica rotated)."""
        self._refresh(force=True)

    def signer(self) -> Signer:
        self._refresh()
        assert self._signer is not None
        return self._signer

    def public_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        self._refresh()
        return dict(self._public)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [jwk_of(kid, key) for kid, key in self.public_keys().items()]}
