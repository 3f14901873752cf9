"""The agent's own JWE decryption and HTTP client (attestation_agent._jwe, _http), which replaced joserfc and httpx
on the agent's start-up path: checked against the broker's joserfc and jwcrypto, and refusing what they must."""

from __future__ import annotations

import base64
import json

import pytest
from attestation_agent._http import HttpClient, TransportError, _proxy_for
from attestation_agent._jwe import EphemeralKey, JweError
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from kbs.jwe import encrypt_for


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _header(body: dict[str, str]) -> dict[str, object]:
    protected = body["protected"]
    return dict(json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4))))


@pytest.mark.parametrize("size", [0, 1, 32, 4096])
def test_decrypts_the_brokers_jwe(size: int) -> None:
    key = EphemeralKey.generate()
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert key.decrypt(encrypt_for(key.public_jwk(), plaintext)) == plaintext


def test_decrypts_jwcrypto_with_party_info() -> None:
    """apu/apv enter the Concat KDF (RFC 7518 4.6.2); the broker sends neither, jwcrypto can."""
    key = EphemeralKey.generate()
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "apu": _b64(b"Alice"), "apv": _b64(b"Bob")}
    token = jwcrypto_jwe.JWE(b"payload", json.dumps(header))
    token.add_recipient(jwcrypto_jwk.JWK(**key.public_jwk()))
    compact = token.serialize(compact=True).split(".")
    body = dict(zip(("protected", "encrypted_key", "iv", "ciphertext", "tag"), compact, strict=True))
    assert key.decrypt(body) == b"payload"


def test_public_jwk_is_a_p256_point() -> None:
    jwk = EphemeralKey.generate().public_jwk()
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert len(base64.urlsafe_b64decode(jwk["x"] + "=")) == 32
    jwcrypto_jwk.JWK(**jwk)  # a valid public key for another implementation


def test_refuses_another_keys_jwe() -> None:
    body = encrypt_for(EphemeralKey.generate().public_jwk(), b"secret")
    with pytest.raises(JweError, match="encrypted_key"):
        EphemeralKey.generate().decrypt(body)


@pytest.mark.parametrize("member", ["ciphertext", "tag", "iv"])
def test_refuses_tampering(member: str) -> None:
    key = EphemeralKey.generate()
    body = encrypt_for(key.public_jwk(), b"secret")
    raw = bytearray(base64.urlsafe_b64decode(body[member] + "=" * (-len(body[member]) % 4)))
    raw[0] ^= 1
    with pytest.raises(JweError, match="ciphertext"):
        key.decrypt({**body, member: _b64(bytes(raw))})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"alg": "ECDH-ES"}, "alg/enc"),
        ({"enc": "A128GCM"}, "alg/enc"),
        ({"zip": "DEF"}, "unsupported members"),
        ({"crit": ["exp"]}, "unsupported members"),
        ({"epk": {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}}, "epk"),
        ({"epk": {"kty": "EC", "crv": "P-256", "x": _b64(bytes(32)), "y": _b64(bytes(32))}}, "not a point"),
    ],
)
def test_refuses_other_headers(change: dict[str, object], match: str) -> None:
    key = EphemeralKey.generate()
    body = encrypt_for(key.public_jwk(), b"secret")
    header = {**_header(body), **change}
    with pytest.raises(JweError, match=match):
        key.decrypt({**body, "protected": _b64(json.dumps(header).encode())})


@pytest.mark.parametrize("body", [{}, {"protected": 5}, {"protected": "!!"}, {"protected": _b64(b"[]")}])
def test_refuses_malformed(body: dict[str, object]) -> None:
    with pytest.raises(JweError, match="protected"):
        EphemeralKey.generate().decrypt(body)


def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert _proxy_for("https", "kbs.example") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert _proxy_for("https", "kbs.example") == "http://proxy:3128"
    assert _proxy_for("http", "kbs.example") is None
    monkeypatch.setenv("all_proxy", "http://all:1")
    assert _proxy_for("http", "kbs.example") == "http://all:1"
    monkeypatch.setenv("no_proxy", "localhost, .example")
    assert _proxy_for("https", "kbs.example") is None
    assert _proxy_for("https", "example") is None
    assert _proxy_for("https", "kbs.example.org") == "http://proxy:3128"
    monkeypatch.setenv("no_proxy", "*")
    assert _proxy_for("https", "anything") is None


@pytest.mark.parametrize("url", ["ftp://kbs.example", "kbs.example:8080", "http://kbs.example:port"])
def test_bad_broker_url_is_a_transport_error(url: str) -> None:
    with pytest.raises(TransportError, match="URL"):
        HttpClient(url).request("GET", "/")


def test_unreachable_broker_is_a_transport_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(TransportError) as refused:
            HttpClient(f"http://127.0.0.1:{port}", timeout=5).request("GET", "/")
    assert refused.value.unsent  # no broker read the request: even a single-use step may go elsewhere


def test_a_request_cut_off_after_it_was_read_may_have_arrived() -> None:
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as server:

        def read_then_hang_up() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)

        reader = threading.Thread(target=read_then_hang_up)
        reader.start()
        with pytest.raises(TransportError) as cut_off:
            HttpClient(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=5).request("POST", "/", json_body={})
        reader.join()
    assert not cut_off.value.unsent
