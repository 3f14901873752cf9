"""Make CoCo sealed secrets as guest-components' `secret` tool does: a JWS (ES256, joserfc) over the secret JSON,
prefixed `sealed.`; envelope secrets wrap a data key under a KEK with AES-256-GCM (tag appended)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jws
from joserfc.jwk import ECKey

__all__ = ["envelope", "seal", "signing_key", "vault"]


def signing_key() -> tuple[ECKey, bytes]:
    """A fresh P-256 key and its public JWK as the KBS stores it."""
    key = ECKey.generate_key("P-256")
    return key, json.dumps(key.as_dict(private=False)).encode()


def seal(secret: dict[str, Any], key: ECKey, kid: str, header: dict[str, Any] | None = None) -> str:
    protected = {"alg": "ES256", "kid": kid, **(header or {})}
    return "sealed." + jws.serialize_compact(protected, json.dumps(secret).encode(), key)


def vault(name: str) -> dict[str, Any]:
    return {
        "version": "0.1.0",
        "type": "vault",
        "name": name,
        "provider": "kbs",
        "provider_settings": {},
        "annotations": {},
    }


def envelope(plaintext: bytes, kek: bytes, key_id: str) -> dict[str, Any]:
    dek = AESGCM.generate_key(256)
    key_iv, data_iv = os.urandom(12), os.urandom(12)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "version": "0.1.0",
        "type": "envelope",
        "key_id": key_id,
        "encrypted_key": b64(AESGCM(kek).encrypt(key_iv, dek, None)),
        "encrypted_data": b64(AESGCM(dek).encrypt(data_iv, plaintext, None)),
        "wrap_type": "A256GCM",
        "iv": b64(data_iv),
        "provider": "kbs",
        "provider_settings": {},
        "annotations": {"iv": b64(key_iv)},
    }
