"""The guest's ephemeral key and the one JWE it decrypts: ECDH-ES+A256KW with A256GCM to a P-256 key.

The broker encrypts a resource to the tee-pubkey of the handshake (kbs/jwe.py); for the P-256 key the agent
sends, that is RFC 7518 section 4.6 key agreement with AES key wrap:
  1. Z = ECDH(the agent's private key, the header's `epk`);
  2. KEK = Concat KDF (NIST SP 800-56A 5.8.1, SHA-256) of Z with OtherInfo = AlgorithmID (the `alg` value),
     PartyUInfo (`apu`), PartyVInfo (`apv`), each a 32-bit big-endian length and the bytes, and SuppPubInfo = 256
     (the key length in bits, 32-bit big-endian) (RFC 7518 4.6.2);
  3. CEK = AES key unwrap (RFC 3394) of `encrypted_key` under KEK;
  4. plaintext = AES-256-GCM of `ciphertext` and `tag` under CEK with `iv`, the AAD being the ASCII of the
     base64url `protected` header (RFC 7516 5.2).
Anything else (another alg or enc, `zip`, `crit`, another curve) is refused. Written on `cryptography` directly: a
JOSE library costs the agent's start-up more than the handshake itself.

>>> key = EphemeralKey.generate()
>>> sorted(key.public_jwk())
['crv', 'kty', 'x', 'y']
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidKey, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

__all__ = ["EphemeralKey", "JweError"]

ALG = "ECDH-ES+A256KW"
ENC = "A256GCM"
CURVE = "P-256"
COORDINATE_SIZE = 32  # P-256 field elements (RFC 7518 6.2.1.2: x and y are the full 32 bytes)
KEK_BITS = 256
_HEADER_KEYS = frozenset({"alg", "enc", "epk", "apu", "apv", "kid", "typ", "cty"})


class JweError(ValueError):
    """The broker's response is not a JWE this key can decrypt; the message names the member."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(value: object, member: str) -> bytes:
    if not isinstance(value, str):
        raise JweError(f"{member}: is not a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise JweError(f"{member}: is not base64url") from None


def _length_prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _epk(value: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(value, Mapping) or value.get("kty") != "EC" or value.get("crv") != CURVE:
        raise JweError(f"protected epk: is not an EC {CURVE} public JWK")
    x = _unb64url(value.get("x"), "protected epk.x")
    y = _unb64url(value.get("y"), "protected epk.y")
    if len(x) != COORDINATE_SIZE or len(y) != COORDINATE_SIZE:
        raise JweError(f"protected epk: coordinates are not {COORDINATE_SIZE} bytes")
    try:  # from_encoded_point checks that the point is on the curve (no invalid-curve attack)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError:
        raise JweError("protected epk: is not a point on P-256") from None


class EphemeralKey:
    """A fresh P-256 key for one handshake: its public JWK goes into runtime-data's tee-pubkey."""

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> EphemeralKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self) -> dict[str, str]:
        numbers = self._private.public_key().public_numbers()
        return {
            "crv": CURVE,
            "x": _b64url(numbers.x.to_bytes(COORDINATE_SIZE, "big")),
            "y": _b64url(numbers.y.to_bytes(COORDINATE_SIZE, "big")),
            "kty": "EC",
        }

    def private_pem(self) -> str:
        """The private key as PKCS#8 PEM (what the REST API's /aa/token hands out as `tee_keypair`)."""
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def decrypt(self, body: Mapping[str, Any]) -> bytes:
        """The plaintext of the broker's flattened JWE (`protected`, `encrypted_key`, `iv`, `ciphertext`, `tag`)."""
        protected = body.get("protected")
        header_bytes = _unb64url(protected, "protected")
        try:
            header = json.loads(header_bytes)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise JweError("protected: is not JSON") from None
        if not isinstance(header, dict):
            raise JweError("protected: is not a JSON object")
        if header.get("alg") != ALG or header.get("enc") != ENC:
            raise JweError(f"protected: alg/enc are {header.get('alg')!r}/{header.get('enc')!r}, expected {ALG}/{ENC}")
        unknown = set(header) - _HEADER_KEYS
        if unknown:
            raise JweError(f"protected: unsupported members {sorted(unknown)} (no zip or crit here)")
        shared = self._private.exchange(ec.ECDH(), _epk(header.get("epk")))
        other_info = (
            _length_prefixed(ALG.encode())
            + _length_prefixed(_unb64url(header.get("apu", ""), "protected apu"))
            + _length_prefixed(_unb64url(header.get("apv", ""), "protected apv"))
            + struct.pack(">I", KEK_BITS)
        )
        kek = ConcatKDFHash(hashes.SHA256(), KEK_BITS // 8, other_info).derive(shared)
        try:
            cek = aes_key_unwrap(kek, _unb64url(body.get("encrypted_key"), "encrypted_key"))
            ciphertext = _unb64url(body.get("ciphertext"), "ciphertext") + _unb64url(body.get("tag"), "tag")
            return AESGCM(cek).decrypt(_unb64url(body.get("iv"), "iv"), ciphertext, str(protected).encode("ascii"))
        except (InvalidUnwrap, InvalidKey):
            raise JweError("encrypted_key: does not unwrap under the agreed key (not encrypted to this key)") from None
        except (InvalidTag, ValueError) as exc:
            raise JweError(f"ciphertext: AES-256-GCM decryption failed ({type(exc).__name__})") from None
