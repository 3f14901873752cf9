"""Resource responses: JWE to EC and RSA tee keys, checked with jwcrypto (a JOSE implementation other than the
broker's joserfc)."""

from __future__ import annotations

import json

import pytest
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from kbs.jwe import JweError, encrypt_for


def decrypt_with_jwcrypto(body: dict[str, str], key: jwcrypto_jwk.JWK) -> bytes:
    token = jwcrypto_jwe.JWE()
    token.deserialize(json.dumps(body), key=key)
    return bytes(token.payload)


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521"])
def test_ec_keys(curve: str) -> None:
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv=curve)
    body = encrypt_for(json.loads(key.export_public()), b"secret")
    assert set(body) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    header = json.loads(jwcrypto_jwk.base64url_decode(body["protected"]))
    assert header["alg"] == "ECDH-ES+A256KW"
    assert header["enc"] == "A256GCM"
    assert header["epk"]["crv"] == curve
    assert decrypt_with_jwcrypto(body, key) == b"secret"


def test_rsa_key() -> None:
    key = jwcrypto_jwk.JWK.generate(kty="RSA", size=2048)
    body = encrypt_for(json.loads(key.export_public()), b"secret")
    assert json.loads(jwcrypto_jwk.base64url_decode(body["protected"]))["alg"] == "RSA-OAEP-256"
    assert decrypt_with_jwcrypto(body, key) == b"secret"


def test_rsa1_5_only_when_allowed() -> None:
    key = jwcrypto_jwk.JWK.generate(kty="RSA", size=2048)
    public = {**json.loads(key.export_public()), "alg": "RSA1_5"}
    with pytest.raises(JweError, match="RSA1_5"):
        encrypt_for(public, b"secret")
    body = encrypt_for(public, b"secret", allow_rsa1_5=True)
    assert json.loads(jwcrypto_jwk.base64url_decode(body["protected"]))["alg"] == "RSA1_5"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "AAAA"},
        {"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {},
    ],
)
def test_unusable_keys(jwk: dict[str, str]) -> None:
    with pytest.raises(JweError):
        encrypt_for(jwk, b"secret")


def test_small_rsa_refused() -> None:
    key = jwcrypto_jwk.JWK.generate(kty="RSA", size=1024)
    with pytest.raises(JweError, match="bits"):
        encrypt_for(json.loads(key.export_public()), b"secret")
