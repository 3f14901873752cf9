"""ocicrypt JWE recipients unwrapped with `cryptography` primitives (RFC 7516 JSON serialization, RFC 7518).

Why not joserfc (the owner's side, guest._encrypt, still uses it): importing joserfc pulls in cryptography.x509
and costs ~30 ms of every `guest` start-up (python -X importtime), about 4% of decrypting a 512 MiB layer, and
unwrapping a recipient needs only a key agreement or RSA-OAEP, a key unwrap and AES-GCM.

Accepted, and nothing weaker: what go-jose (ocicrypt keywrap/jwe) emits. Key management `RSA-OAEP`,
`RSA-OAEP-256` (RFC 7518 4.3) and `ECDH-ES+A128KW` / `+A192KW` / `+A256KW` on P-256/P-384/P-521 (4.6, the
Concat KDF of NIST SP 800-56A with SHA-256); content encryption `A256GCM` (5.3). General or flattened JSON
serialization (RFC 7516 7.2); headers with `zip` or `crit` are refused. The ephemeral public key must lie on the
private key's curve (cryptography checks the point).
"""

from __future__ import annotations

import binascii
import json
import re
from base64 import urlsafe_b64decode
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

__all__ = ["ALGORITHMS", "CONTENT_ENCRYPTION", "JweError", "PrivateKey", "decrypt", "load_private_key"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CONTENT_ENCRYPTION = "A256GCM"  # RFC 7518 5.3
CEK_SIZE = 32  # A256GCM key
IV_SIZE = 12  # RFC 7518 5.3: 96-bit IV
TAG_SIZE = 16  # RFC 7518 5.3: 128-bit authentication tag
_OAEP = {"RSA-OAEP": hashes.SHA1, "RSA-OAEP-256": hashes.SHA256}  # RFC 7518 4.3 (SHA-1 is OAEP's MGF here)
_ECDH_KW = {"ECDH-ES+A128KW": 16, "ECDH-ES+A192KW": 24, "ECDH-ES+A256KW": 32}  # RFC 7518 4.6: KEK bytes
ALGORITHMS = (*_OAEP, *_ECDH_KW)
_CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")  # RFC 7515 2: base64url without padding


class JweError(Exception):
    """A JWE or a JWK that this module cannot use (malformed, an algorithm not accepted, the wrong key)."""


def _b64u(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise JweError(f"{field}: expected a base64url string")
    try:
        return urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise JweError(f"{field}: is not valid base64url") from None


def _int(doc: Mapping[str, Any], field: str) -> int:
    return int.from_bytes(_b64u(doc.get(field), f"JWK {field}"), "big")


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JweError(f"{field}: expected a JSON object")
    return value


def _from_jwk(doc: Mapping[str, Any]) -> PrivateKey:
    """An RSA or EC private key from its JWK (RFC 7518 6.2.2, 6.3.2); the public members must match."""
    if doc.get("kty") == "RSA":
        n, e, d = _int(doc, "n"), _int(doc, "e"), _int(doc, "d")
        if "p" in doc:
            p, q = _int(doc, "p"), _int(doc, "q")
        else:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        public = rsa.RSAPublicNumbers(e, n)
        numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                        rsa.rsa_crt_iqmp(p, q), public)  # fmt: skip
        return numbers.private_key()
    crv = doc.get("crv")
    if doc.get("kty") == "EC" and isinstance(crv, str) and crv in _CURVES:
        key = ec.derive_private_key(_int(doc, "d"), _CURVES[crv]())
        public_numbers = key.public_key().public_numbers()
        if (public_numbers.x, public_numbers.y) != (_int(doc, "x"), _int(doc, "y")):
            raise JweError("EC JWK: x, y are not the public key of d")
        return key
    raise JweError(f"JWK kty {doc.get('kty')!r} (crv {doc.get('crv')!r}) is not an RSA or EC P-256/384/521 key")


def load_private_key(data: bytes) -> PrivateKey:
    """An RSA or EC private key from an RSA/EC private JWK, or unencrypted PEM (PKCS#8, PKCS#1, SEC1) or DER."""
    text = data.strip()
    if text.startswith(b"{"):
        try:
            return _from_jwk(_object(json.loads(text), "JWK"))
        except (ValueError, JweError):  # JSONDecodeError, and cryptography's ValueError for bad numbers
            raise JweError("JSON that is not an RSA or EC private JWK") from None
    try:
        key = (
            serialization.load_pem_private_key(text, None)
            if text.startswith(b"-----")
            else serialization.load_der_private_key(data, None)
        )
    except (ValueError, TypeError):
        raise JweError("not an unencrypted PEM/DER private key or a JWK") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise JweError(f"{type(key).__name__} keys cannot unwrap ocicrypt JWE recipients")
    return key


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data  # SP 800-56A Datalen || Data, as RFC 7518 4.6.2 uses it


def _unwrap_cek(header: Mapping[str, Any], encrypted_key: bytes, key: PrivateKey) -> bytes:
    """The content encryption key of one recipient; JweError if `key` cannot unwrap it."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise JweError(f"alg is {alg!r}, expected one of {list(ALGORITHMS)}")
    if alg in _OAEP:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise JweError(f"alg {alg} needs an RSA key")
        digest = _OAEP[alg]()
        cek = key.decrypt(encrypted_key, padding.OAEP(padding.MGF1(digest), digest, None))
    elif alg in _ECDH_KW:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise JweError(f"alg {alg} needs an EC key")
        epk = _object(header.get("epk"), "epk")
        crv = epk.get("crv")
        curve_type = _CURVES.get(crv) if isinstance(crv, str) else None
        curve = curve_type() if curve_type is not None else None
        if epk.get("kty") != "EC" or curve is None or curve.name != key.curve.name:
            raise JweError(f"epk is kty {epk.get('kty')!r} crv {epk.get('crv')!r}, expected EC on {key.curve.name}")
        peer = ec.EllipticCurvePublicNumbers(_int(epk, "x"), _int(epk, "y"), curve).public_key()  # on-curve check
        size = _ECDH_KW[alg]
        other_info = (
            _length_prefixed(alg.encode())
            + _length_prefixed(_b64u(header.get("apu", ""), "apu"))
            + _length_prefixed(_b64u(header.get("apv", ""), "apv"))
            + (size * 8).to_bytes(4, "big")  # SuppPubInfo: keydatalen in bits
        )
        kek = ConcatKDFHash(hashes.SHA256(), size, other_info).derive(key.exchange(ec.ECDH(), peer))
        cek = aes_key_unwrap(kek, encrypted_key)
    else:
        raise JweError(f"alg {alg!r} is not one of {list(ALGORITHMS)}")
    if len(cek) != CEK_SIZE:
        raise JweError(f"content key is {len(cek)} bytes, expected {CEK_SIZE} for {CONTENT_ENCRYPTION}")
    return cek


def _headers(doc: Mapping[str, Any]) -> tuple[str, list[tuple[dict[str, Any], bytes]]]:
    """The protected header's base64url text, and each recipient's joint header with its encrypted key."""
    protected_text = doc.get("protected")
    if not isinstance(protected_text, str):
        raise JweError("protected header missing")
    try:
        protected = _object(json.loads(_b64u(protected_text, "protected")), "protected header")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JweError("protected header is not JSON") from None
    shared = _object(doc.get("unprotected", {}), "unprotected header")
    recipients = doc.get("recipients", [{"header": doc.get("header", {}), "encrypted_key": doc.get("encrypted_key")}])
    if not isinstance(recipients, list):
        raise JweError("recipients: expected a list")
    joint = []
    for index, recipient in enumerate(recipients):
        own = _object(_object(recipient, f"recipient {index}").get("header", {}), f"recipient {index} header")
        if set(protected) & set(shared) or set(protected) & set(own) or set(shared) & set(own):
            raise JweError("a header parameter occurs in more than one header (RFC 7516 7.2.1)")
        header = {**protected, **shared, **own}
        if "zip" in header or "crit" in header:
            raise JweError("zip and crit header parameters are not supported")
        if header.get("enc") != CONTENT_ENCRYPTION:
            raise JweError(f"enc is {header.get('enc')!r}, expected {CONTENT_ENCRYPTION!r}")
        joint.append((header, _b64u(recipient.get("encrypted_key"), f"recipient {index} encrypted_key")))
    return protected_text, joint


def decrypt(doc: Mapping[str, Any], key: PrivateKey) -> bytes:
    """The plaintext of JWE `doc` (JSON serialization) for `key`; JweError if malformed or not for this key."""
    protected_text, recipients = _headers(doc)
    iv, tag = _b64u(doc.get("iv"), "iv"), _b64u(doc.get("tag"), "tag")
    ciphertext = _b64u(doc.get("ciphertext"), "ciphertext")
    if len(iv) != IV_SIZE or len(tag) != TAG_SIZE:
        raise JweError(f"iv/tag are {len(iv)}/{len(tag)} bytes, expected {IV_SIZE}/{TAG_SIZE}")
    aad = protected_text.encode("ascii")  # RFC 7516 5.1 step 14
    if "aad" in doc:
        _b64u(doc["aad"], "aad")
        aad += b"." + str(doc["aad"]).encode("ascii")
    reasons = []
    for index, (header, encrypted_key) in enumerate(recipients):
        try:
            return AESGCM(_unwrap_cek(header, encrypted_key, key)).decrypt(iv, ciphertext + tag, aad)
        except JweError as exc:
            reasons.append(f"recipient {index}: {exc}")
        except (InvalidUnwrap, InvalidTag, ValueError):  # ValueError: failed OAEP, an epk not on the curve
            reasons.append(f"recipient {index}: not for this key, or altered")
    raise JweError(f"no recipient of the JWE is for this key ({'; '.join(reasons)})")
