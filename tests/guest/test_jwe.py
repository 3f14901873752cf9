"""guest._jwe against an independent JWE implementation (jwcrypto): every accepted algorithm and serialization,
JWK and PEM keys, and the refusals (altered JWEs, other keys, algorithms or headers not accepted, bad points).
The skopeo interop tests (test_interop) cover what go-jose itself emits."""

from __future__ import annotations

import contextlib
import json
import re
from base64 import urlsafe_b64encode
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwe as jc_jwe
from jwcrypto import jwk as jc_jwk

from guest._jwe import JweError, PrivateKey, decrypt, load_private_key

PLAINTEXT = b'{"symkey":"k","digest":"sha256:00","cipheroptions":{"nonce":"n"}}'
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {"P-256": ec.generate_private_key(ec.SECP256R1()), "P-384": ec.generate_private_key(ec.SECP384R1())}


def _pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _jwk(key: PrivateKey) -> jc_jwk.JWK:
    return jc_jwk.JWK.from_pem(_pem(key))


def _encrypt(recipients: list[tuple[PrivateKey, str]], flatten: bool = True) -> dict[str, Any]:
    token = jc_jwe.JWE(PLAINTEXT, protected=json.dumps({"enc": "A256GCM"}))
    for key, alg in recipients:
        token.add_recipient(_jwk(key).public(), header=json.dumps({"alg": alg}))
    doc: dict[str, Any] = json.loads(token.serialize(compact=False))
    if not flatten and "recipients" not in doc:
        doc["recipients"] = [{"header": doc.pop("header"), "encrypted_key": doc.pop("encrypted_key")}]
    return doc


KEY_CASES: dict[str, tuple[PrivateKey, str]] = {
    "rsa-oaep": (RSA_KEY, "RSA-OAEP"),
    "rsa-oaep-256": (RSA_KEY, "RSA-OAEP-256"),
    "ecdh-a128kw-p256": (EC_KEYS["P-256"], "ECDH-ES+A128KW"),
    "ecdh-a192kw-p384": (EC_KEYS["P-384"], "ECDH-ES+A192KW"),
    "ecdh-a256kw-p256": (EC_KEYS["P-256"], "ECDH-ES+A256KW"),
}


@pytest.mark.parametrize("case", sorted(KEY_CASES))
@pytest.mark.parametrize("flatten", [True, False], ids=["flattened", "general"])
def test_decrypts_every_accepted_algorithm(case: str, flatten: bool) -> None:
    key, alg = KEY_CASES[case]
    assert decrypt(_encrypt([(key, alg)], flatten=flatten), key) == PLAINTEXT


def test_finds_its_recipient_among_several() -> None:
    doc = _encrypt([(EC_KEYS["P-384"], "ECDH-ES+A256KW"), (RSA_KEY, "RSA-OAEP"), (EC_KEYS["P-256"], "ECDH-ES+A128KW")])
    assert len(doc["recipients"]) == 3
    for key in (EC_KEYS["P-256"], RSA_KEY, EC_KEYS["P-384"]):
        assert decrypt(doc, key) == PLAINTEXT


def test_loads_jwk_and_pem_keys() -> None:
    for key in (RSA_KEY, EC_KEYS["P-256"]):
        jwk_json = _jwk(key).export_private().encode()
        for data in (jwk_json, _pem(key)):
            loaded = load_private_key(data)
            assert loaded.public_key().public_numbers() == key.public_key().public_numbers()
    rsa_without_crt = {k: v for k, v in json.loads(_jwk(RSA_KEY).export_private()).items() if k in "kty n e d"}
    loaded = load_private_key(json.dumps(rsa_without_crt).encode())
    assert loaded.public_key().public_numbers() == RSA_KEY.public_key().public_numbers()


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def _flip(field: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        value = doc[field]
        doc[field] = ("B" if value[0] != "B" else "C") + value[1:]

    return mutate


def _protected(**changes: object) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        header = json.loads(jc_jwk.base64url_decode(doc["protected"]))
        doc["protected"] = _b64(json.dumps({**header, **changes}).encode())

    return mutate


def _off_curve(doc: dict[str, Any]) -> None:
    doc["header"]["epk"]["y"] = doc["header"]["epk"]["x"]  # (x, x) is not a point of P-256


ALTERED = "recipient 0: not for this key, or altered"
BAD_JWES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "ciphertext-altered": (_flip("ciphertext"), ALTERED),
    "tag-altered": (_flip("tag"), ALTERED),
    "iv-altered": (_flip("iv"), ALTERED),
    "encrypted-key-altered": (_flip("encrypted_key"), ALTERED),
    "protected-header-altered": (_protected(kid="other"), ALTERED),  # GCM's AAD: the tag no longer matches
    "zip-header": (_protected(zip="DEF"), "zip and crit header parameters are not supported"),
    "crit-header": (_protected(crit=["exp"]), "zip and crit header parameters are not supported"),
    "enc-a128gcm": (_protected(enc="A128GCM"), "enc is 'A128GCM', expected 'A256GCM'"),
    "epk-off-curve": (_off_curve, ALTERED),  # cryptography: the point is not on the curve
    "epk-other-curve": (lambda doc: doc["header"]["epk"].update(crv="P-384"), "crv 'P-384', expected EC on secp256r1"),
    "padded-base64": (lambda doc: doc.update(iv=doc["iv"] + "="), "iv: expected a base64url string"),
    "alg-dir": (lambda doc: doc["header"].update(alg="dir"), "alg 'dir' is not one of"),
    "alg-not-a-string": (lambda doc: doc["header"].update(alg=["RSA-OAEP"]), "alg is ['RSA-OAEP'], expected"),
    "epk-crv-not-a-string": (lambda doc: doc["header"]["epk"].update(crv=["P-256"]), "crv ['P-256'], expected EC"),
    "alg-in-two-headers": (_protected(alg="ECDH-ES+A256KW"), "occurs in more than one header"),
}


@pytest.mark.parametrize("case", sorted(BAD_JWES))
def test_refuses_altered_or_unaccepted_jwes(case: str) -> None:
    key = EC_KEYS["P-256"]
    doc = _encrypt([(key, "ECDH-ES+A256KW")])
    assert "epk" in doc["header"]  # jwcrypto puts it in the recipient's header
    mutate, message = BAD_JWES[case]
    mutate(doc)
    with pytest.raises(JweError, match=re.escape(message)):
        decrypt(doc, key)


@pytest.mark.parametrize("alg", ["RSA-OAEP", "ECDH-ES+A256KW"])
def test_refuses_another_key(alg: str) -> None:
    key = RSA_KEY if alg == "RSA-OAEP" else EC_KEYS["P-256"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RSA-OAEP" else EC_KEYS["P-384"]
    with pytest.raises(JweError, match="no recipient of the JWE is for this key"):
        decrypt(_encrypt([(key, alg)]), other)


@pytest.mark.parametrize(
    "data",
    [
        b'{"kty": "oct", "k": "AAAA"}',
        b'{"kty": "EC", "crv": "P-256"}',
        b'{"kty": "EC", "crv": ["P-256"]}',
        b"{not json",
        b"[1]",
        b"garbage",
        b"",
    ],
    ids=["oct-jwk", "incomplete-ec-jwk", "crv-not-a-string", "bad-json", "json-list", "garbage", "empty"],
)
def test_refuses_unusable_keys(data: bytes) -> None:
    with pytest.raises(JweError):
        load_private_key(data)


def test_refuses_ed25519_keys() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(JweError, match="cannot unwrap"):
        load_private_key(pem)


def test_refuses_an_ec_jwk_whose_public_point_is_not_d() -> None:
    doc = json.loads(_jwk(EC_KEYS["P-256"]).export_private())
    doc["x"] = json.loads(_jwk(EC_KEYS["P-384"]).export_public())["x"]
    with pytest.raises(JweError):
        load_private_key(json.dumps(doc).encode())


VALID = json.dumps(_encrypt([(EC_KEYS["P-256"], "ECDH-ES+A256KW"), (RSA_KEY, "RSA-OAEP")], flatten=False))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_jwes_raise_only_jwe_error(data: st.DataObject) -> None:
    text = bytearray(VALID.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        text[data.draw(st.integers(0, len(text) - 1))] = data.draw(st.sampled_from(b'{}[]",:0aA_-=1 '))
    try:
        doc = json.loads(text)
    except ValueError:
        return
    if not isinstance(doc, dict):
        return
    for key in (EC_KEYS["P-256"], RSA_KEY):
        with contextlib.suppress(JweError):
            assert decrypt(doc, key) == PLAINTEXT


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "d", "n", "e"]),
                                                 st.sampled_from(["EC", "RSA", "P-256", "AQAB", "", "AA", 1])).map(
    lambda d: json.dumps(d).encode()))  # fmt: skip
def test_random_keys_raise_only_jwe_error(data: bytes) -> None:
    with pytest.raises(JweError):
        load_private_key(data)
