"""The HCL runtime data (the report's variable data): a JSON object the paravisor writes, read only once it is
bound to an authentic hardware report.

    {"keys": [{"kid": "HCLAkPub", "key_ops": ["sign"], "kty": "RSA", "e": b64url, "n": b64url},
              {"kid": "HCLEkPub", "key_ops": ["encrypt"], "kty": "RSA", ...}],
     "vm-configuration": {"secure-boot": bool, "tpm-enabled": bool, "vmUniqueId": str, ...},
     "user-data": hex (the 64 bytes written to the vTPM NV index 0x01400002 before the report was made)}

The vTPM attestation key is the JWK with kid "HCLAkPub" (an RSA key: Azure's vTPM AK is RSA-2048).
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import FormatError, Reason

__all__ = ["AK_KID", "RuntimeData", "parse_runtime_data"]

AK_KID = "HCLAkPub"
WHAT = "HCL runtime data"
# RSA moduli the vTPM may use (TPM 2.0 Part 2 TPMI_RSA_KEY_BITS: 1024..4096; Azure's AK is 2048).
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096


class RuntimeData(NamedTuple):
    """document: the JSON object as sent (claimed as it is); ak_public: the AK's DER SubjectPublicKeyInfo;
    user_data: the decoded `user-data` (None when absent)."""

    document: Mapping[str, object]
    ak_public: bytes
    ak_sha256: bytes
    user_data: bytes | None


def _b64url_int(jwk: Mapping[str, object], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise FormatError(f"{WHAT}: key {AK_KID} field {name} is {type(value).__name__}, expected base64url")
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
        raise FormatError(f"{WHAT}: key {AK_KID} field {name} is not base64url ({exc})") from exc
    return int.from_bytes(raw, "big")


def _ak(keys: object) -> bytes:
    """The DER SubjectPublicKeyInfo of the JWK whose kid is HCLAkPub (RFC 7517 / RFC 7518 §6.3.1)."""
    if not isinstance(keys, list):
        raise FormatError(f"{WHAT}: field keys is {type(keys).__name__}, expected a list of JWKs")
    found = [k for k in keys if isinstance(k, dict) and k.get("kid") == AK_KID]
    if len(found) != 1:
        raise FormatError(f"{WHAT}: {len(found)} keys with kid {AK_KID!r}, expected exactly one")
    (jwk,) = found
    if jwk.get("kty") != "RSA":
        raise FormatError(f"{WHAT}: key {AK_KID} kty is {jwk.get('kty')!r}, expected 'RSA'", Reason.UNSUPPORTED_FORMAT)
    n, e = _b64url_int(jwk, "n"), _b64url_int(jwk, "e")
    if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS or e < 3 or e % 2 == 0:
        raise FormatError(f"{WHAT}: key {AK_KID} is a {n.bit_length()}-bit RSA key with e={e}, not a usable AK")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_runtime_data(data: bytes) -> RuntimeData:
    """Parse the (already bound) runtime data; FormatError when it is not the JSON described above."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{WHAT} is not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise FormatError(f"{WHAT} is a JSON {type(document).__name__}, expected an object")
    ak_public = _ak(document.get("keys"))
    user_data = None
    raw = document.get("user-data")
    if raw is not None:
        if not isinstance(raw, str):
            raise FormatError(f"{WHAT}: field user-data is {type(raw).__name__}, expected a hex string")
        try:
            user_data = bytes.fromhex(raw)
        except ValueError as exc:
            raise FormatError(f"{WHAT}: field user-data is not hex ({exc})") from exc
    return RuntimeData(document, ak_public, hashlib.sha256(ak_public).digest(), user_data)
