"""Operating the broker: private files, no secret in the logs, the client address behind proxies, rate limits shared
through Redis, the metrics, and readiness when the KEK goes."""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import stat
from pathlib import Path

import httpx
import pytest
import redis

import policies
from tests.conftest import run_cli
from tests.integration._guest import Guest
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer

DEMO_POLICY = policies.load("demo_resource_allow_sample.rego")
REDIS_URL = "redis://127.0.0.1:6379/0"
PRIVATE = ("kek.bin", "kbs.sqlite", "admin.key", "admin.token")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files -----------------------------------------------------------------------------------------------------


def test_init_writes_secret_files_0600(tmp_path: Path) -> None:
    done = run_cli("kbs", "init", str(tmp_path / "kbs"))
    assert done.returncode == 0, done.stderr.decode()
    for name in PRIVATE:
        assert _mode(tmp_path / "kbs" / name) == 0o600, name
    # init --force over a database left world-readable makes it private again
    (tmp_path / "kbs" / "kbs.sqlite").chmod(0o644)
    assert run_cli("kbs", "init", str(tmp_path / "kbs"), "--force").returncode == 0
    assert _mode(tmp_path / "kbs" / "kbs.sqlite") == 0o600


def test_files_the_broker_creates_are_0600(tmp_path: Path) -> None:
    database = tmp_path / "fresh.sqlite"
    with KbsServer(tmp_path / "kbs", database_url=f"sqlite:///{database}") as server:
        server.admin.put_resource("default/key/1", SECRET)
        made = list(tmp_path.glob("fresh.sqlite*"))
        assert database in made
        assert {p.name: _mode(p) for p in made} == {p.name: 0o600 for p in made}


@pytest.mark.parametrize("name", PRIVATE)
def test_serve_refuses_group_or_world_readable_secrets(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "kbs"
    assert run_cli("kbs", "init", str(folder)).returncode == 0
    (folder / name).chmod(0o640)
    done = run_cli("kbs", "serve", "--config", str(folder / "kbs.toml"), "--port", "1", timeout=60)
    assert done.returncode == 1
    message = done.stderr.decode()
    assert str(folder / name) in message
    assert "mode 640" in message


def _forms(value: bytes) -> set[str]:
    """A value as it could leak: raw text, hex, base64 and base64url (padded or not)."""
    forms = {value.hex(), base64.b64encode(value).decode(), base64.urlsafe_b64encode(value).decode()}
    forms |= {f.rstrip("=") for f in forms}
    with contextlib.suppress(UnicodeDecodeError):
        forms.add(value.decode())
    return {f for f in forms if len(f) >= 12}


def test_no_secret_in_debug_logs_of_a_full_run(tmp_path: Path) -> None:
    folder = tmp_path / "kbs"
    with KbsServer(folder, log_level="debug") as server:
        token_file = str(folder / "admin.token")
        resource = secrets.token_bytes(32)
        text_secret = secrets.token_urlsafe(24).encode()
        (tmp_path / "r1").write_bytes(resource)
        (tmp_path / "r2").write_bytes(text_secret)
        (tmp_path / "policy.rego").write_text(DEMO_POLICY)
        admin = ("admin", "--url", server.url, "--token", token_file)
        outputs = [
            run_cli("kbs", *admin, "resource", "put", "default/key/1", str(tmp_path / "r1")),
            run_cli("kbs", *admin, "resource", "put", "default/key/2", str(tmp_path / "r2")),
            run_cli("kbs", *admin, "reference-value", "put", "sample_svn", "1"),
            run_cli("kbs", *admin, "policy", "set", "resource", str(tmp_path / "policy.rego")),
            run_cli("kbs", *admin, "rotate-signing-key"),
            run_cli("kbs", *admin, "audit"),
        ]
        for done in outputs:
            assert done.returncode == 0, done.stderr.decode()
        guest = Guest(server.url)
        token = guest.handshake()
        assert guest.decrypt(guest.resource("default/key/1", token).json()) == resource
        assert guest.decrypt(guest.resource("default/key/2", token, cookies=False).json()) == text_secret
        assert_error(httpx.get(server.url + "/kbs/v0/resource/default/key/1"), 401, "UnAuthorized")
        session = guest.http.cookies.get("kbs-session-id") or ""
    logs = server.log.read_text() + "".join(done.stderr.decode() for done in outputs)
    assert " DEBUG " in logs or " INFO " in logs  # the broker logged (it ran at DEBUG)
    admin_key = (folder / "admin.key").read_text()
    admin_key_body = "".join(admin_key.strip().splitlines()[1:-1])
    values = {
        "resource": _forms(resource),
        "text resource": _forms(text_secret),
        "KEK": _forms((folder / "kek.bin").read_bytes()),
        "admin token": {server.token, server.token.split(".")[2]},
        "admin key": {admin_key_body[:40], admin_key_body[-40:]},
        "EAR token": {token, token.split(".")[2]},
        "session": {session} if len(session) >= 12 else set(),
    }
    for what, forms in values.items():
        for form in forms:
            assert form not in logs, f"the {what} appears in the logs"


# -- proxies and rate limits -----------------------------------------------------------------------------------


def _auth(url: str, forwarded_for: str | None = None, header: str = "X-Forwarded-For") -> httpx.Response:
    headers = {header: forwarded_for} if forwarded_for else {}
    return httpx.post(url + "/kbs/v0/auth", json={"version": "0.4.0", "tee": "sample"}, headers=headers)


def test_forwarded_for_is_honoured_only_from_trusted_proxies(tmp_path: Path) -> None:
    limits = {"rate_limit": {"auth_per_minute": 12}}  # a burst of 2 per client
    with KbsServer(tmp_path / "untrusted", config=limits) as server:
        # Without trusted proxies the header is the client's to forge: every request is the peer's, one bucket.
        statuses = [_auth(server.url, f"198.51.100.{i}").status_code for i in range(4)]
        assert statuses[:2] == [200, 200]
        assert 429 in statuses
    config = {**limits, "server": {"trusted_proxies": ["127.0.0.0/8", "10.0.0.0/8"]}}
    with KbsServer(tmp_path / "trusted", config=config) as server:
        # Behind a trusted proxy every forwarded client has its own bucket...
        assert [_auth(server.url, f"198.51.100.{i}").status_code for i in range(6)] == [200] * 6
        # ...keyed by the rightmost hop that is not a trusted proxy (the leftmost is the client's to forge),
        chain = [_auth(server.url, f"203.0.113.{i}, 192.0.2.7, 10.1.2.3").status_code for i in range(4)]
        assert chain[:2] == [200, 200]
        assert 429 in chain
        # and RFC 7239 Forwarded names the same client.
        refused = _auth(server.url, 'for="192.0.2.7:4711";proto=https, for=10.1.2.3', header="Forwarded")
        assert_error(refused, 429, "RateLimited")
        assert int(refused.headers["Retry-After"]) >= 1


@pytest.fixture
def redis_server() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (scripts/redis-up starts it)")
    return client


def test_two_replicas_share_one_redis_limit(tmp_path: Path, redis_server: redis.Redis) -> None:
    config = {
        "rate_limit": {"auth_per_minute": 24, "attest_per_minute": 6},  # bursts of 4 and 1 per client
        "limits": {"redis_url": REDIS_URL},
        "server": {"trusted_proxies": ["127.0.0.1"]},
    }
    client = f"192.0.2.{secrets.randbelow(250) + 1}"  # a client of its own: other runs may share this Redis
    redis_server.delete(f"veritee:rate:auth:{client}", f"veritee:rate:attest:{client}")
    first = KbsServer(tmp_path / "a", config=config)
    with first, KbsServer(tmp_path / "a", config=config, init=False) as second:
        statuses = [_auth(replica.url, client).status_code for replica in (first, second) * 2]
        assert statuses == [200] * 4
        for replica in (first, second):
            refused = _auth(replica.url, client)
            assert_error(refused, 429, "RateLimited", "/auth")
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # another client is not held back by this one's budget
        assert _auth(second.url, "198.18.0.1").status_code == 200
        # /attest has its own budget: the first attempt passes the limit (and fails on its own merits), the next
        # is refused on the other replica
        headers = {"X-Forwarded-For": client}
        body = {"runtime-data": {"nonce": "x", "tee-pubkey": {}}, "tee-evidence": {"primary_evidence": {}}}
        assert httpx.post(first.url + "/kbs/v0/attest", json=body, headers=headers).status_code != 429
        refused = httpx.post(second.url + "/kbs/v0/attest", json=body, headers=headers)
        assert_error(refused, 429, "RateLimited", "/attest")
        assert "Retry-After" in refused.headers
    redis_server.delete(f"veritee:rate:auth:{client}", f"veritee:rate:attest:{client}", "veritee:rate:auth:198.18.0.1")


# -- metrics and readiness -------------------------------------------------------------------------------------


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series.partition("{")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_metrics_latency_outcomes_and_releases(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy(DEMO_POLICY)
        guest = Guest(server.url)
        token = guest.handshake()
        assert guest.resource("default/key/1", token).status_code == 200
        text = httpx.get(server.url + "/metrics").text
    assert "# TYPE kbs_request_duration_seconds histogram" in text
    route = "/kbs/v0/resource/{path:path}"
    assert _metric(text, "kbs_request_duration_seconds_count", route=route, status="200", method="GET") == 1
    assert _metric(text, "kbs_request_duration_seconds_bucket", route=route, status="200", le="+Inf") == 1
    assert _metric(text, "kbs_request_duration_seconds_count", route="/kbs/v0/auth", status="200") == 1
    assert "default/key/1" not in text  # the route template, never the path sent
    assert _metric(text, "kbs_attestations_total", tee="sample", outcome="token", reason="none") == 1
    assert _metric(text, "kbs_releases_total", repository="default", type="key") == 1
    assert "tag=" not in text


def test_attestation_rejections_are_counted_by_tee_and_reason(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        guest = Guest(server.url)
        nonce = guest.auth().json()["nonce"]
        # evidence bound to another nonce: the verifier's reason is report_data_mismatch
        assert_error(guest.attest(nonce, bind_nonce="another"), 401, "AttestationFailed", "report_data_mismatch")
        assert_error(Guest(server.url).attest("no-session"), 401, "UnAuthorized")
        text = httpx.get(server.url + "/metrics").text
    assert _metric(text, "kbs_attestations_total", tee="sample", outcome="rejected", reason="report_data_mismatch") == 1
    assert _metric(text, "kbs_attestations_total", tee="unknown", outcome="rejected", reason="UnAuthorized") == 1
    assert _metric(text, "kbs_request_duration_seconds_count", route="/kbs/v0/attest", status="401") == 2


def test_readyz_fails_while_the_kek_is_unavailable(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        kek = tmp_path / "kbs" / "kek.bin"
        saved = kek.read_bytes()
        kek.unlink()
        assert_error(httpx.get(server.url + "/readyz"), 503, "ServiceUnavailable", "key-encryption key")
        assert httpx.get(server.url + "/healthz").status_code == 200
        kek.write_bytes(saved)
        kek.chmod(0o644)  # back, but readable by others: still not ready
        assert_error(httpx.get(server.url + "/readyz"), 503, "ServiceUnavailable", "key-encryption key")
        kek.chmod(0o600)
        assert httpx.get(server.url + "/readyz").status_code == 200
