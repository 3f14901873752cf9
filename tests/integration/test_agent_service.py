"""`attestation-agent serve` against a real `kbs serve`: guest-components' api-server-rest surface, token reuse,
the broker going away and coming back, and every bad request answered with its status while the service keeps
serving."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt

import policies
from tests.conftest import run_cli
from tests.integration._agent_service import AgentService
from tests.integration._kbs_server import KbsServer

SECRETS = {
    "default/key/1": b"the image key \x00\x01\xff",
    "default/key/2": b"second",
    "other/cert/a.b-c_d": b"x" * 5000,
}
DEMO_POLICY = policies.load("demo_resource_allow_sample.rego")


def provision(server: KbsServer) -> None:
    for path, value in SECRETS.items():
        server.admin.put_resource(path, value)
    server.admin.put_reference_value("sample_svn", ["1"])
    server.admin.set_resource_policy(DEMO_POLICY)


def attestations(server: KbsServer) -> int:
    """Tokens the broker issued since it started (its Prometheus counter)."""
    text = httpx.get(server.url + "/metrics").text
    match = re.search(r'^kbs_attest_total\{outcome="token"\} (\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("kbs") / "conf") as server:
        provision(server)
        yield server


@pytest.fixture(scope="module")
def agent(broker: KbsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentService]:
    with AgentService(broker.url, tmp_path_factory.mktemp("agent")) as service:
        yield service


# -- the api-server-rest surface ----------------------------------------------------------------------------------


def test_info(agent: AgentService) -> None:
    response = agent.get("/info")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    info = response.json()
    assert info["tee"] == "sample"
    assert info["additional_tees"] == []
    assert info["feature"] == "all"
    assert info["version"]


def test_resources_exact_bytes_and_one_attestation(broker: KbsServer, tmp_path: Path) -> None:
    before = attestations(broker)
    with AgentService(broker.url, tmp_path) as service:
        for path in ("default/key/1", "default/key/2", "other/cert/a.b-c_d"):
            response = service.get(f"/cdh/resource/{path}")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/octet-stream"
            assert response.content == SECRETS[path]
    assert attestations(broker) - before == 1


def test_concurrent_requests_share_one_attestation(broker: KbsServer, tmp_path: Path) -> None:
    before = attestations(broker)
    with AgentService(broker.url, tmp_path) as service, ThreadPoolExecutor(16) as pool:
        clients = [httpx.Client(base_url=service.url, timeout=60) for _ in range(16)]
        try:
            results = list(pool.map(lambda c: c.get("/cdh/resource/default/key/1"), clients * 3))
        finally:
            for client in clients:
                client.close()
    assert [r.status_code for r in results] == [200] * 48
    assert {r.content for r in results} == {SECRETS["default/key/1"]}
    assert attestations(broker) - before == 1


def test_token_verifies_against_the_brokers_jwks_and_key_matches(broker: KbsServer, agent: AgentService) -> None:
    response = agent.get("/aa/token?token_type=kbs")
    assert response.status_code == 200, response.text
    body = json.loads(response.content)
    assert set(body) == {"token", "tee_keypair"}
    jwks = httpx.get(broker.url + "/.well-known/jwks.json").json()
    key = jwcrypto_jwk.JWK(**jwks["keys"][0])
    claims = json.loads(jwcrypto_jwt.JWT(jwt=body["token"], key=key).claims)
    evidence = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
    tee_pubkey = evidence["runtime_data_claims"]["tee-pubkey"]
    private = serialization.load_pem_private_key(body["tee_keypair"].encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    numbers = private.public_key().public_numbers()
    assert jwcrypto_jwk.JWK(**tee_pubkey).get_op_key("verify").public_numbers() == numbers
    # The token is the one resource fetches reuse: asking again gives the same token.
    assert json.loads(agent.get("/aa/token?token_type=kbs").content)["token"] == body["token"]


@pytest.mark.parametrize(
    ("query", "runtime_data"),
    [
        ("runtime_data=hello", b"hello"),
        ("runtime_data=a%20b%2Fc", b"a b/c"),
        ("runtime_data=cmVwb3J0&encoding=base64", b"report"),
        (
            "runtime_data=" + base64.urlsafe_b64encode(bytes(range(64))).decode().rstrip("=") + "&encoding=base64",
            bytes(range(64)),
        ),
        ("runtime_data=", b""),
    ],
)
def test_evidence_is_bound_to_the_runtime_data(agent: AgentService, query: str, runtime_data: bytes) -> None:
    response = agent.get("/aa/evidence?" + query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert json.loads(response.content) == {"svn": "1", "report_data": base64.b64encode(runtime_data).decode()}


def test_additional_evidence_without_devices(agent: AgentService) -> None:
    response = agent.get("/aa/additional-evidence?runtime_data=abc")
    assert response.status_code == 200
    assert json.loads(response.content) == {}


# -- bad requests: each its status and a message; the service keeps serving -------------------------------------

BAD_REQUESTS = {
    "token-without-type": ("GET", "/aa/token", 400, "token_type is required"),
    "token-unknown-type": ("GET", "/aa/token?token_type=coco_as", 400, "not supported"),
    "evidence-without-data": ("GET", "/aa/evidence", 400, "runtime_data is required"),
    "evidence-not-base64": ("GET", "/aa/evidence?runtime_data=!!!&encoding=base64", 400, "not URL-safe base64"),
    "evidence-padded-base64": ("GET", "/aa/evidence?runtime_data=cmVwb3J0ZQ==&encoding=base64", 400, "base64"),
    "evidence-unknown-encoding": ("GET", "/aa/evidence?runtime_data=00&encoding=hex", 400, "'hex' is not supported"),
    "evidence-too-long": ("GET", "/aa/evidence?runtime_data=" + "a" * 65, 400, "65 bytes, at most 64"),
    "evidence-too-many-fields": ("GET", "/aa/evidence?" + "&".join(f"f{i}=1" for i in range(20)), 400, "fields"),
    "additional-evidence-without-data": ("GET", "/aa/additional-evidence", 400, "runtime_data is required"),
    "query-too-long": ("GET", "/aa/evidence?runtime_data=" + "a" * 3000, 414, "at most 2048"),
    "resource-two-segments": ("GET", "/cdh/resource/default/key", 400, "2 segments"),
    "resource-four-segments": ("GET", "/cdh/resource/a/b/c/d", 400, "4 segments"),
    "resource-empty-segment": ("GET", "/cdh/resource/default//1", 400, "''"),
    "resource-percent": ("GET", "/cdh/resource/default/key/%2e%2e", 400, "segment"),
    "resource-query": ("GET", "/cdh/resource/default/key/1?x=1", 400, "no query"),
    "resource-missing": ("GET", "/cdh/resource/default/key/404", 404, "does not exist"),
    "resource-post": ("POST", "/cdh/resource/default/key/1", 405, "takes GET"),
    "token-post": ("POST", "/aa/token?token_type=kbs", 405, "takes GET"),
    "info-delete": ("DELETE", "/info", 405, "takes GET"),
    "evidence-put": ("PUT", "/aa/evidence?runtime_data=a", 405, "takes GET"),
    "aael-get": ("GET", "/aa/aael", 405, "takes POST"),
    "unknown-aa": ("GET", "/aa/unknown", 404, "no route"),
    "unknown-cdh": ("GET", "/cdh/secret/x", 404, "no route"),
    "unknown-root": ("GET", "/", 404, "no route"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_answered_and_service_keeps_serving(agent: AgentService, case: str) -> None:
    method, target, status, message = BAD_REQUESTS[case]
    response = agent.http.request(method, target)
    assert response.status_code == status, response.text
    assert message in response.text
    if status == 405:
        assert response.headers["allow"] in ("GET", "POST")
    assert agent.get("/info").status_code == 200
    assert agent.alive()


def raw_exchange(agent: AgentService, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


RAW_REQUESTS = {
    "request-line-too-long": (b"GET /info?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"414 URI Too Long"),
    "not-http": (b"hello there\r\n\r\n", b"400 Bad Request"),
    "absolute-form": (b"GET http://x/info HTTP/1.1\r\n\r\n", b"400 Bad Request"),
    "http-2": (b"GET /info HTTP/2.0\r\n\r\n", b"400 Bad Request"),
    "bad-method-token": (b"G(T /info HTTP/1.1\r\n\r\n", b"400 Bad Request"),
    "header-without-colon": (b"GET /info HTTP/1.1\r\nnonsense\r\n\r\n", b"400 Bad Request"),
    "too-many-headers": (b"GET /info HTTP/1.1\r\n" + b"X-A: 1\r\n" * 70 + b"\r\n", b"431 Request Header"),
    "header-too-long": (b"GET /info HTTP/1.1\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", b"431 Request Header"),
    "chunked-body": (b"POST /aa/aael HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411 Length Required"),
    "body-too-large": (b"POST /aa/aael HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", b"413 Content Too Large"),
    "bad-content-length": (b"POST /aa/aael HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400 Bad Request"),
    # httpx would normalise dot segments away; a raw client sends them.
    "resource-dot-dot": (b"GET /cdh/resource/default/../key HTTP/1.1\r\nConnection: close\r\n\r\n", b"400 Bad Request"),
    "resource-dot-dot-tag": (b"GET /cdh/resource/a/b/.. HTTP/1.1\r\nConnection: close\r\n\r\n", b"400 Bad Request"),
    "unknown-method": (b"BREW /info HTTP/1.1\r\nConnection: close\r\n\r\n", b"405 Method Not Allowed"),
}


@pytest.mark.parametrize("case", sorted(RAW_REQUESTS))
def test_malformed_http_is_refused_and_service_keeps_serving(agent: AgentService, case: str) -> None:
    request, status_line = RAW_REQUESTS[case]
    answer = raw_exchange(agent, request)
    assert answer.startswith(b"HTTP/1.1 " + status_line), answer[:200]
    assert agent.get("/info").status_code == 200


def test_keep_alive_serves_many_requests_on_one_connection(agent: AgentService) -> None:
    request = b"GET /aa/evidence?runtime_data=x HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = raw_exchange(agent, request * 5 + b"GET /info HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 6


# -- the broker's lifecycle: token expiry, restarts, outages ---------------------------------------------------


def test_token_expiry_and_broker_restart_without_a_failed_request(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs", config={"tokens": {"ttl_seconds": 4}}) as server:
        provision(server)
        with AgentService(server.url, tmp_path, "--refresh-margin", "1") as service:
            assert service.get("/cdh/resource/default/key/1").content == SECRETS["default/key/1"]
            assert service.get("/cdh/resource/default/key/2").content == SECRETS["default/key/2"]
            assert attestations(server) == 1
            time.sleep(3.2)  # within the refresh margin of the 4 s token: the next request re-attests
            assert service.get("/cdh/resource/default/key/1").status_code == 200
            assert attestations(server) == 2
            server.restart()  # same database: the token still verifies, the pooled connections are stale
            for _ in range(3):
                response = service.get("/cdh/resource/default/key/2")
                assert response.status_code == 200, response.text
                assert response.content == SECRETS["default/key/2"]


def test_broker_down_is_503_then_recovers(tmp_path: Path) -> None:
    server = KbsServer(tmp_path / "kbs")
    with server, AgentService(server.url, tmp_path) as service:
        provision(server)
        assert service.get("/cdh/resource/default/key/1").status_code == 200
        server.stop()
        down = service.get("/cdh/resource/default/key/1")
        assert down.status_code == 503
        assert "unreachable" in down.text
        assert server.url.removeprefix("http://") in down.text
        assert service.get("/aa/token?token_type=kbs").status_code == 200  # the cached token needs no broker
        server.start()
        assert service.get("/cdh/resource/default/key/1").content == SECRETS["default/key/1"]


def test_broker_reset_refuses_the_old_token_and_the_agent_reattests(tmp_path: Path) -> None:
    first = KbsServer(tmp_path / "first")
    with first, AgentService(first.url, tmp_path) as service:
        provision(first)
        token = json.loads(service.get("/aa/token?token_type=kbs").content)["token"]
        first.stop()
        # A new broker on the same address with a new database and token key: the old token gets 401.
        with KbsServer(tmp_path / "second", port=first.port) as second:
            provision(second)
            response = service.get("/cdh/resource/default/key/2")
            assert response.status_code == 200, response.text
            assert response.content == SECRETS["default/key/2"]
            assert attestations(second) == 1
            assert json.loads(service.get("/aa/token?token_type=kbs").content)["token"] != token


def test_policy_denial_is_403(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_resource("default/key/1", b"k")  # default policy: never to the sample TEE
        with AgentService(server.url, tmp_path) as service:
            response = service.get("/cdh/resource/default/key/1")
            assert response.status_code == 403
            assert "PolicyDeny" in response.text or "denies" in response.text


# -- listening --------------------------------------------------------------------------------------------------


def test_unix_socket(broker: KbsServer, tmp_path: Path) -> None:
    sock = tmp_path / "run" / "agent.sock"
    with AgentService(broker.url, tmp_path, unix=sock) as service:
        assert sock.is_socket()
        assert oct(sock.stat().st_mode & 0o777) == "0o660"
        assert service.get("/cdh/resource/default/key/1").content == SECRETS["default/key/1"]
        assert service.get("/info").json()["tee"] == "sample"
    assert not sock.exists()


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("0.0.0.0:8006", b"not a loopback address"),
        ("8006", b"not HOST:PORT"),
        ("127.0.0.1:99999", b"not HOST:PORT"),
        ("unix:relative.sock", b"must be absolute"),
    ],
)
def test_serve_refuses_bad_or_remote_listen(listen: str, message: bytes) -> None:
    done = run_cli("attestation-agent", "serve", "--kbs", "http://127.0.0.1:9", "--listen", listen, "--tee", "sample")
    assert done.returncode == 2
    assert message in done.stderr
