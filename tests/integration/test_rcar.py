"""The whole attest -> release path against a real `kbs serve`, on SQLite and PostgreSQL, and every bad input the
protocol can receive: each answered with its status and trustee's error body, and nothing stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt

import policies
from kbs.admin_auth import mint_token
from kbs.admin_client import AdminClient, AdminError
from kbs_protocol import ERROR_TYPE_PREFIX
from tests.integration._guest import Guest
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer

DEMO_POLICY = policies.load("demo_resource_allow_sample.rego")


@pytest.fixture(scope="module")
def broker(kbs_server: KbsServer) -> KbsServer:
    kbs_server.admin.put_resource("default/key/1", SECRET)
    kbs_server.admin.put_reference_value("sample_svn", ["1"])
    kbs_server.admin.set_resource_policy(DEMO_POLICY)
    return kbs_server


KEYS = {
    "ec-p256": lambda: jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256"),
    "ec-p384": lambda: jwcrypto_jwk.JWK.generate(kty="EC", crv="P-384"),
    "ec-p521": lambda: jwcrypto_jwk.JWK.generate(kty="EC", crv="P-521"),
    "rsa-2048": lambda: jwcrypto_jwk.JWK.generate(kty="RSA", size=2048),
}


@pytest.mark.parametrize("key", sorted(KEYS))
def test_full_flow_by_cookie_and_bearer(broker: KbsServer, key: str) -> None:
    guest = Guest(broker.url, KEYS[key]())
    challenge = guest.auth()
    assert challenge.status_code == 200
    body = challenge.json()
    assert set(body) == {"nonce", "extra-params"}
    assert len(base64.b64decode(body["nonce"])) == 32
    cookie = challenge.headers["set-cookie"]
    assert "kbs-session-id=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    token = guest.attest(body["nonce"]).json()["token"]

    by_cookie = guest.resource("default/key/1")
    assert by_cookie.status_code == 200, by_cookie.text
    assert guest.decrypt(by_cookie.json()) == SECRET

    by_bearer = guest.resource("default/key/1", token, cookies=False)
    assert by_bearer.status_code == 200, by_bearer.text
    assert set(by_bearer.json()) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    assert guest.decrypt(by_bearer.json()) == SECRET


def test_token_claims_are_ear(broker: KbsServer) -> None:
    token = Guest(broker.url).handshake()
    jwks = httpx.get(broker.url + "/.well-known/jwks.json").json()
    key = jwcrypto_jwk.JWK(**jwks["keys"][0])
    claims = json.loads(jwcrypto_jwt.JWT(jwt=token, key=key).claims)
    assert claims["eat_profile"] == "tag:github.com,2023:veraison/ear"
    submod = claims["submods"]["cpu0"]
    assert submod["ear.status"] == "affirming"
    assert set(submod["ear.trustworthiness-vector"]) == {
        "instance-identity",
        "configuration",
        "executables",
        "file-system",
        "hardware",
        "runtime-opaque",
        "storage-opaque",
        "sourced-data",
    }
    evidence = submod["ear.veraison.annotated-evidence"]
    assert evidence["sample"]["svn"] == "1"
    assert set(evidence) >= {"sample", "report_data", "runtime_data_claims", "init_data", "init_data_claims"}
    assert set(evidence["runtime_data_claims"]) == {"nonce", "tee-pubkey"}


def test_default_policy_refuses_sample(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("sample_svn", ["1"])
        guest = Guest(server.url)
        token = guest.handshake()
        denied = guest.resource("default/key/1", token)
        assert_error(denied, 403, "PolicyDeny", "sample TEE")


def test_sample_refused_unless_allowed(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs", allow_sample=False) as server:
        assert_error(Guest(server.url).auth(), 400, "InvalidRequest", "allow_sample")


# -- bad protocol input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.3.0", "0.5.0", "1.0.0", "banana"])
def test_wrong_protocol_version(broker: KbsServer, version: str) -> None:
    assert_error(Guest(broker.url).auth(version=version), 400, "ProtocolVersion", "0.4")


def test_patch_versions_accepted(broker: KbsServer) -> None:
    assert Guest(broker.url).auth(version="0.4.9").status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth", b"{not json"),
        ("/auth", b'{"version": "0.4.0"}'),
        ("/auth", b"[]"),
        ("/attest", b"{not json"),
        ("/attest", b'{"runtime-data": {}}'),
    ],
)
def test_malformed_json(broker: KbsServer, path: str, body: bytes) -> None:
    response = httpx.post(broker.url + "/kbs/v0" + path, content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "InvalidRequest", "malformed")


def test_oversized_body(broker: KbsServer) -> None:
    big = b"x" * (2 * 1024 * 1024 + 1)
    response = httpx.post(broker.url + "/kbs/v0/auth", content=big)
    assert_error(response, 413, "PayloadTooLarge")
    put = httpx.post(
        broker.url + "/kbs/v0/resource/default/key/big",
        content=big,
        headers={"Authorization": f"Bearer {broker.token}"},
    )
    assert_error(put, 413, "PayloadTooLarge")
    assert "default/key/big" not in [r["path"] for r in broker.admin.list_resources()]


def test_oversized_chunked_body(broker: KbsServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    response = httpx.post(broker.url + "/kbs/v0/attest", content=chunks())
    assert_error(response, 413, "PayloadTooLarge")


def test_attest_without_session(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    response = httpx.post(broker.url + "/kbs/v0/attest", json=guest.attest_body(nonce))
    assert_error(response, 401, "UnAuthorized", "/auth")


def test_second_attest_refused(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    assert guest.attest(nonce).status_code == 200
    assert_error(guest.attest(nonce), 401, "UnAuthorized", "already used")


def test_replayed_nonce_on_new_session(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    old_nonce = guest.auth().json()["nonce"]
    assert guest.attest(old_nonce).status_code == 200
    replay = Guest(broker.url)
    replay.auth()
    assert_error(replay.attest(old_nonce), 401, "AttestationFailed", "nonce")


def test_evidence_bound_to_another_nonce(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    response = guest.attest(nonce, bind_nonce="c29tZSBvdGhlciBub25jZQ==")
    assert_error(response, 401, "AttestationFailed", "report_data_mismatch")


def test_evidence_bound_to_another_key(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    other = json.loads(jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256").export_public())
    assert_error(guest.attest(nonce, bind_key=other), 401, "AttestationFailed", "report_data_mismatch")


def test_failed_attest_consumes_the_nonce(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    assert guest.attest(nonce, bind_nonce="AAAA").status_code == 401
    assert_error(guest.attest(nonce), 401, "UnAuthorized", "already used")


def test_resource_without_attestation(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    assert_error(guest.resource("default/key/1", cookies=False), 401, "UnAuthorized")
    guest.auth()
    assert_error(guest.resource("default/key/1"), 401, "UnAuthorized", "not attested")


def test_tampered_token(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    header, payload, signature = guest.handshake().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["submods"]["cpu0"]["ear.status"] = "affirming"
    claims["exp"] += 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for token in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{signature[::-1]}", "not-a-jwt"):
        assert_error(guest.resource("default/key/1", token, cookies=False), 401, "JWTVerificationFailed")


@pytest.mark.parametrize(
    "path",
    [
        "default/key",
        "default/key/1/extra",
        "default/../1",
        "default/key/..",
        "default%2fkey/1",
        "default/key%2f1/2",
        ".hidden/key/1",
        "default//1",
    ],
)
def test_bad_resource_paths(broker: KbsServer, path: str) -> None:
    guest = Guest(broker.url)
    token = guest.handshake()
    # Send the path as given: no client-side normalisation of `..` or decoding of %2f.
    url = httpx.URL(broker.url + "/kbs/v0/resource/x").copy_with(raw_path=f"/kbs/v0/resource/{path}".encode())
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (400, 404), response.text
    assert response.json()["type"].startswith(ERROR_TYPE_PREFIX)
    assert response.status_code == 400 or "not found" in response.json()["detail"].lower()


def test_unknown_resource(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    token = guest.handshake()
    assert_error(guest.resource("default/key/nope", token), 404, "ResourceNotFound")


# -- admin -----------------------------------------------------------------------------------------------------


def test_admin_without_token(broker: KbsServer) -> None:
    response = httpx.post(broker.url + "/kbs/v0/resource/default/key/2", content=b"x")
    assert_error(response, 401, "UnAuthorized", "Bearer")
    assert "default/key/2" not in [r["path"] for r in broker.admin.list_resources()]


def test_admin_with_wrong_key(broker: KbsServer) -> None:
    forged = mint_token(ed25519.Ed25519PrivateKey.generate(), ttl_seconds=600)
    with AdminClient(broker.url, forged) as client, pytest.raises(AdminError) as info:
        client.put_resource("default/key/3", b"x")
    assert info.value.status == 401
    assert "default/key/3" not in [r["path"] for r in broker.admin.list_resources()]


def test_admin_with_expired_token(broker: KbsServer) -> None:
    key = serialization.load_pem_private_key((broker.config_dir / "admin.key").read_bytes(), password=None)
    expired = mint_token(key, ttl_seconds=-60)
    with AdminClient(broker.url, expired) as client, pytest.raises(AdminError) as info:
        client.put_resource("default/key/4", b"x")
    assert info.value.status == 401
    assert "expired" in info.value.detail


def test_admin_role_is_checked(broker: KbsServer) -> None:
    key = serialization.load_pem_private_key((broker.config_dir / "admin.key").read_bytes(), password=None)
    with AdminClient(broker.url, mint_token(key, role="auditor", ttl_seconds=600)) as auditor:
        assert isinstance(auditor.audit(), list)
        with pytest.raises(AdminError) as info:
            auditor.put_resource("default/key/5", b"x")
    assert info.value.status == 403


def test_admin_bad_policy_is_refused_and_old_kept(broker: KbsServer) -> None:
    with pytest.raises(AdminError) as info:
        broker.admin.set_resource_policy("package policy\nallow :=")
    assert info.value.status == 400
    assert broker.admin.get_policy("resource") == DEMO_POLICY


def test_admin_resource_lifecycle_and_audit(broker: KbsServer) -> None:
    broker.admin.put_resource("other/key/9", b"v1")
    assert broker.admin.get_resource("other/key/9") == b"v1"
    assert any(r["path"] == "other/key/9" and r["size"] == 2 for r in broker.admin.list_resources())
    broker.admin.delete_resource("other/key/9")
    with pytest.raises(AdminError) as info:
        broker.admin.get_resource("other/key/9")
    assert info.value.status == 404
    actions = [(a["action"], a["target"]) for a in broker.admin.audit(50)]
    assert ("resource.put", "other/key/9") in actions
    assert ("resource.delete", "other/key/9") in actions
    log_text = json.dumps(broker.admin.audit(200))
    assert "v1" not in log_text.replace('"v1', "")  # never the secret


def test_health_endpoints(broker: KbsServer) -> None:
    assert httpx.get(broker.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(broker.url + "/readyz").status_code == 200
    metrics = httpx.get(broker.url + "/metrics").text
    assert "kbs_auth_total" in metrics
    schema = httpx.get(broker.url + "/openapi.json").json()
    assert "/kbs/v0/auth" in schema["paths"]
