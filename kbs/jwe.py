"""Resource responses: a flattened JWE JSON object encrypted to the guest's tee-pubkey (RFC 7516 7.2.2).

`enc` is A256GCM; `alg` follows the key: ECDH-ES+A256KW for EC keys (P-256, P-384, P-521), RSA-OAEP-256 for RSA,
and RSA1_5 only when configured for old clients.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Mapping
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, RSAKey

__all__ = ["JweError", "encrypt_for"]

ENC = "A256GCM"
_EC_CURVES = ("P-256", "P-384", "P-521")
MIN_RSA_BITS = 2048


class JweError(Exception):
    """The tee-pubkey cannot be encrypted to."""


def _modulus_bits(n: object) -> int:
    if not isinstance(n, str):
        raise JweError("tee-pubkey RSA key has no modulus n")
    try:
        modulus = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JweError("tee-pubkey RSA modulus n is not base64url") from exc
    return int.from_bytes(modulus, "big").bit_length()


def encrypt_for(tee_pubkey: Mapping[str, Any], plaintext: bytes, *, allow_rsa1_5: bool = False) -> dict[str, str]:
    jwk = {k: v for k, v in tee_pubkey.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    kty = jwk.get("kty")
    registry = None
    try:
        if kty == "EC":
            if jwk.get("crv") not in _EC_CURVES:
                raise JweError(f"tee-pubkey crv is {jwk.get('crv')!r}, expected one of {list(_EC_CURVES)}")
            key: ECKey | RSAKey = ECKey.import_key(jwk)
            alg = "ECDH-ES+A256KW"
        elif kty == "RSA":
            bits = _modulus_bits(jwk.get("n"))
            if bits < MIN_RSA_BITS:
                raise JweError(f"tee-pubkey RSA key is {bits} bits, at least {MIN_RSA_BITS} expected")
            key = RSAKey.import_key(jwk)
            alg = jwk.get("alg", "RSA-OAEP-256")
            if alg == "RSA1_5" and not allow_rsa1_5:
                raise JweError("tee-pubkey asks for RSA1_5, which this broker refuses (insecure_allow_rsa1_5)")
            if alg not in ("RSA-OAEP-256", "RSA1_5"):
                alg = "RSA-OAEP-256"
            registry = jwe.JWERegistry(algorithms=[alg, ENC])
        else:
            raise JweError(f"tee-pubkey kty is {kty!r}, expected EC or RSA")
        with warnings.catch_warnings():
            # RSA1_5 is only reachable behind the explicit switch above.
            warnings.simplefilter("ignore", SecurityWarning)
            compact = jwe.encrypt_compact({"alg": alg, "enc": ENC}, plaintext, key, registry=registry)
    except (JoseError, ValueError, TypeError) as exc:
        raise JweError(f"tee-pubkey is not a usable JWK: {exc}") from exc
    protected, encrypted_key, iv, ciphertext, tag = compact.split(".")
    # The compact form's parts are the flattened JSON members; the AAD is the ASCII of `protected` either way.
    return {"protected": protected, "encrypted_key": encrypted_key, "iv": iv, "ciphertext": ciphertext, "tag": tag}
