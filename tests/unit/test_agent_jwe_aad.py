"""The agent decrypts a resource JWE with the AAD taken from `protected` exactly as sent (RFC 7516 5.2 step 14),
not from a re-serialisation of the header: trustee's KBS (josekit) and others order and space the header as they
like. The JWE here is built by hand, with the header's members in no canonical order."""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

import pytest
from attestation_agent._jwe import EphemeralKey
from attestation_agent.kbs_client import KbsClient, KbsClientError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

PLAINTEXT = b"the image key"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def agent_key() -> tuple[EphemeralKey, dict[str, Any]]:
    """The agent's ephemeral key, as its client makes one, and its public JWK (the tee-pubkey)."""
    key = EphemeralKey.generate()
    return key, dict(key.public_jwk())


def jwe_to(jwk: dict[str, Any], header_json: str, *, aad_from: str | None = None) -> dict[str, str]:
    """ECDH-ES+A256KW / A256GCM (RFC 7518 4.6) to `jwk`; `header_json` is sent as written, and the AAD is the
    ASCII of its base64url unless `aad_from` gives another header text to take it from."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    point = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + unb64url(jwk["x"]) + unb64url(jwk["y"])
    )
    shared = ephemeral.exchange(ec.ECDH(), point)
    alg = b"ECDH-ES+A256KW"
    other = struct.pack(">I", len(alg)) + alg + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", 256)
    kek = ConcatKDFHash(hashes.SHA256(), 32, other).derive(shared)
    cek = os.urandom(32)
    numbers = ephemeral.public_key().public_numbers()
    epk = {"y": b64url(numbers.y.to_bytes(32, "big")), "x": b64url(numbers.x.to_bytes(32, "big"))}
    protected = b64url(header_json.replace("EPK_X", epk["x"]).replace("EPK_Y", epk["y"]).encode())
    aad_text = protected
    if aad_from is not None:
        aad_text = b64url(aad_from.replace("EPK_X", epk["x"]).replace("EPK_Y", epk["y"]).encode())
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, PLAINTEXT, aad_text.encode("ascii"))
    return {
        "protected": protected,
        "encrypted_key": b64url(aes_key_wrap(kek, cek)),
        "iv": b64url(iv),
        "ciphertext": b64url(sealed[:-16]),
        "tag": b64url(sealed[-16:]),
    }


# Members out of order, spaces after the separators, the epk's members out of order too.
NON_CANONICAL = (
    '{"enc": "A256GCM", "epk": {"y": "EPK_Y", "crv": "P-256", "x": "EPK_X", "kty": "EC"}, "alg": "ECDH-ES+A256KW"}'
)
CANONICAL = '{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":"EPK_X","y":"EPK_Y"}}'


def test_aad_is_the_protected_string_as_sent() -> None:
    key, public = agent_key()
    body = jwe_to(public, NON_CANONICAL)
    assert json.loads(unb64url(body["protected"]))["alg"] == "ECDH-ES+A256KW"
    assert KbsClient._decrypt(body, key) == PLAINTEXT


def test_aad_of_a_re_serialised_header_does_not_decrypt() -> None:
    """Sealed over the canonical form but sent in another order: an agent that re-serialised the header would
    accept it; taking the AAD from the string as sent, the tag does not verify."""
    key, public = agent_key()
    body = jwe_to(public, NON_CANONICAL, aad_from=CANONICAL)
    with pytest.raises(KbsClientError, match="not a JWE for this key"):
        KbsClient._decrypt(body, key)


def test_a_reencoded_protected_member_does_not_decrypt() -> None:
    """The same header, re-encoded canonically after sealing: the AAD changed, so the tag fails."""
    key, public = agent_key()
    body = jwe_to(public, NON_CANONICAL)
    header = json.loads(unb64url(body["protected"]))
    body["protected"] = b64url(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(KbsClientError, match="not a JWE for this key"):
        KbsClient._decrypt(body, key)
