"""CoCo sealed secrets (guest-components' confidential-data-hub `secret` format): check, then unseal.

A sealed secret is `sealed.` followed by a JWS in compact serialisation (RFC 7515 7.1: base64url header,
payload and signature, no padding). The protected header names `alg` ES256 and a `kid` that is a `kbs:///`
URI: the KBS resource holding the verification key, a P-256 public JWK. The payload is the secret's JSON:

    {"version": "0.1.0", "type": "vault", "provider": "kbs", "name": "kbs:///R/T/T",
     "provider_settings": {}, "annotations": {}}
        -> the bytes of the KBS resource `name`
    {"version": "0.1.0", "type": "envelope", "provider": "kbs", "key_id": "kbs:///R/T/T",
     "encrypted_key": <b64>, "encrypted_data": <b64>, "wrap_type": "A256GCM", "iv": <b64>,
     "provider_settings": {}, "annotations": {"iv": <b64>}}
        -> the data key (DEK) is AES-256-GCM(KEK, annotations.iv, encrypted_key) where the KEK is the 32-byte KBS
           resource `key_id`; the secret is AES-256-GCM(DEK, iv, encrypted_data). Ciphertexts carry the
           16-byte GCM tag at their end, as guest-components' crypto crate writes them.

Order (fail closed): the string is parsed and its header checked; the verification key is fetched and the
signature verified; only then is the payload read and anything it names fetched. The unsigned form
guest-components once accepted (`sealed.fakejwsheader.<payload>.fakesignature`) is refused like any other
secret whose signature does not verify. Every failure is a `SealedSecretError` with a message for humans.

    >>> unseal("sealed.e30.e30.AA", lambda uri: b"")
    Traceback (most recent call last):
    ...
    attestation_agent.sealed.SealedSecretError: sealed secret header: alg is None, expected ES256
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["MAX_SEALED_SECRET", "SealedSecretError", "unseal"]

PREFIX = "sealed."
VERSION = "0.1.0"
MAX_SEALED_SECRET = 64 * 1024
KBS_PROVIDER = "kbs"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
AES_256_KEY_SIZE = 32
GCM_TAG_SIZE = 16
GCM_NONCE_SIZES = frozenset({12})
P256_COORDINATE = 32

# kbs:///repo/type/tag -> the resource's bytes (attests to the KBS on first use).
Fetch = Callable[[str], bytes]


class SealedSecretError(Exception):
    """The sealed secret is malformed, its signature does not verify, or what it names cannot be unsealed."""


@dataclass(frozen=True)
class _Compact:
    header: dict[str, Any]
    signing_input: str
    payload: bytes
    signature: bytes


def _b64url(part: str, what: str) -> bytes:
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise SealedSecretError(f"sealed secret {what} is not base64url without padding")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _parse(text: str) -> _Compact:
    text = text.strip()
    if len(text) > MAX_SEALED_SECRET:
        raise SealedSecretError(f"sealed secret is {len(text)} characters, at most {MAX_SEALED_SECRET}")
    if not text.startswith(PREFIX):
        raise SealedSecretError("not a sealed secret: it does not start with 'sealed.'")
    compact = text.removeprefix(PREFIX)
    parts = compact.split(".")
    if len(parts) != 3:
        raise SealedSecretError(f"sealed secret has {len(parts)} dot-separated parts after 'sealed.', expected 3 (JWS)")
    try:
        header = json.loads(_b64url(parts[0], "header"))
    except (SealedSecretError, ValueError, UnicodeDecodeError):
        raise SealedSecretError(
            "sealed secret header is not base64url JSON (the unsigned 'fakejwsheader' form is refused: "
            "seal the secret with an ES256 key held by the KBS)"
        ) from None
    if not isinstance(header, dict):
        raise SealedSecretError("sealed secret header is not a JSON object")
    payload = _b64url(parts[1], "payload")
    signature = _b64url(parts[2], "signature") if parts[2] else b""
    return _Compact(header=header, signing_input=f"{parts[0]}.{parts[1]}", payload=payload, signature=signature)


def _kid(header: dict[str, Any]) -> str:
    if header.get("alg") != "ES256":
        raise SealedSecretError(f"sealed secret header: alg is {header.get('alg')!r}, expected ES256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid.startswith("kbs:///"):
        raise SealedSecretError(f"sealed secret header: kid is {kid!r}, expected a kbs:/// URI of the verification key")
    if set(header.get("crit", [])):
        raise SealedSecretError(f"sealed secret header: crit {header['crit']!r} is not understood")
    return kid


def _verification_key(raw: bytes, kid: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of the JWK stored at kid (RFC 7518 6.2.1; only its public part is used)."""
    try:
        jwk = json.loads(raw)
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise SealedSecretError(f"verification key {kid} is not an EC P-256 JWK")
        x, y = _b64url(jwk["x"], "key x"), _b64url(jwk["y"], "key y")
        if len(x) != P256_COORDINATE or len(y) != P256_COORDINATE:
            raise SealedSecretError(f"verification key {kid} is not an EC P-256 JWK")
        # from_encoded_point checks that the point is on the curve.
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise SealedSecretError(f"verification key {kid} is not an EC P-256 JWK") from None


def _verified_payload(compact: _Compact, key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, Any]:
    """RFC 7515 5.2 with ES256 (RFC 7518 3.4): the signature is R || S, 32 bytes each, over the signing input."""
    signature = compact.signature
    if len(signature) != 2 * P256_COORDINATE:
        raise SealedSecretError(f"sealed secret signature does not verify with {kid}: it is not 64 bytes (ES256)")
    r, s = (int.from_bytes(signature[i : i + P256_COORDINATE], "big") for i in (0, P256_COORDINATE))
    try:
        key.verify(encode_dss_signature(r, s), compact.signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SealedSecretError(f"sealed secret signature does not verify with {kid}") from None
    try:
        payload = json.loads(compact.payload)
    except (ValueError, UnicodeDecodeError):
        raise SealedSecretError("sealed secret payload is not JSON") from None
    if not isinstance(payload, dict):
        raise SealedSecretError("sealed secret payload is not a JSON object")
    return payload


def _field(secret: dict[str, Any], name: str, kind: str) -> str:
    value = secret.get(name)
    if not isinstance(value, str):
        raise SealedSecretError(f"{kind} secret: field {name} is {value!r}, expected a string")
    return value


def _b64std(secret: dict[str, Any], name: str, kind: str, source: dict[str, Any] | None = None) -> bytes:
    value = _field(secret if source is None else source, name, kind)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SealedSecretError(f"{kind} secret: field {name} is not standard base64") from None


def _aes_gcm(key: bytes, nonce: bytes, sealed: bytes, what: str) -> bytes:
    if len(key) != AES_256_KEY_SIZE:
        raise SealedSecretError(f"{what}: the key is {len(key)} bytes, expected {AES_256_KEY_SIZE} (AES-256)")
    if len(nonce) not in GCM_NONCE_SIZES:
        raise SealedSecretError(f"{what}: the IV is {len(nonce)} bytes, expected 12")
    if len(sealed) < GCM_TAG_SIZE:
        raise SealedSecretError(f"{what}: the ciphertext is shorter than the GCM tag")
    try:
        return AESGCM(key).decrypt(nonce, sealed, None)
    except InvalidTag:
        raise SealedSecretError(f"{what}: AES-256-GCM authentication failed (wrong key or altered data)") from None


def _envelope(secret: dict[str, Any], fetch: Fetch) -> bytes:
    key_id = _field(secret, "key_id", "envelope")
    if not key_id.startswith("kbs:///"):
        raise SealedSecretError(f"envelope secret: key_id is {key_id!r}, expected a kbs:/// URI of the KEK")
    if secret.get("wrap_type") != "A256GCM":
        raise SealedSecretError(f"envelope secret: wrap_type is {secret.get('wrap_type')!r}, expected A256GCM")
    annotations = secret.get("annotations")
    if not isinstance(annotations, dict):
        raise SealedSecretError("envelope secret: annotations is not an object with the key-wrap iv")
    encrypted_key = _b64std(secret, "encrypted_key", "envelope")
    key_iv = _b64std(secret, "iv", "envelope", annotations)
    encrypted_data = _b64std(secret, "encrypted_data", "envelope")
    data_iv = _b64std(secret, "iv", "envelope")
    kek = fetch(key_id)
    dek = _aes_gcm(kek, key_iv, encrypted_key, f"envelope secret: unwrapping the data key with {key_id}")
    return _aes_gcm(dek, data_iv, encrypted_data, "envelope secret: decrypting encrypted_data")


def unseal(text: str, fetch: Fetch) -> bytes:
    """The plaintext of a sealed secret; `fetch` gets KBS resources (the verification key, then what the secret
    names). Raises SealedSecretError."""
    compact = _parse(text)
    kid = _kid(compact.header)
    key = _verification_key(fetch(kid), kid)
    secret = _verified_payload(compact, key, kid)
    if secret.get("version") != VERSION:
        raise SealedSecretError(f"sealed secret version is {secret.get('version')!r}, expected {VERSION}")
    kind = secret.get("type")
    if kind not in ("vault", "envelope"):
        raise SealedSecretError(f"sealed secret type is {kind!r}, expected vault or envelope")
    provider = secret.get("provider")
    if provider != KBS_PROVIDER:
        raise SealedSecretError(f"{kind} secret: provider is {provider!r}; this agent unseals only provider kbs")
    if kind == "vault":
        name = _field(secret, "name", "vault")
        if not name.startswith("kbs:///"):
            raise SealedSecretError(f"vault secret: name is {name!r}, expected a kbs:/// URI")
        return fetch(name)
    return _envelope(secret, fetch)
