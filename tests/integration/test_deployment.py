"""docker-compose.yml as plain processes: its syntax checked by docker-compose, its load balancer (nginx with
deploy/nginx.conf) in front of two `kbs serve` replicas on one PostgreSQL database, a guest attesting through it,
and the replicas' settings from the compose file (Redis for shared limits, nginx as the trusted proxy) at work."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

import policies
from tests.conftest import ROOT
from tests.integration._guest import Guest
from tests.integration._helpers import assert_error
from tests.integration._kbs_server import KbsServer
from tests.integration.conftest import need, new_database_url


def test_compose_file_is_valid() -> None:
    done = subprocess.run(
        [need("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    text = (ROOT / "docker-compose.yml").read_text()
    for service in ("postgres:", "redis:", "kbs-1:", "kbs-2:", "lb:"):
        assert f"\n  {service}" in text


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_compose_wires_redis_and_the_trusted_proxy() -> None:
    services = _compose()["services"]
    balancer = services["lb"]["networks"]["default"]["ipv4_address"]
    for replica in ("kbs-1", "kbs-2"):
        env = services[replica]["environment"]
        assert env["VERITEE_KBS_LIMITS__REDIS_URL"] == "redis://redis:6379/0"
        assert json.loads(env["VERITEE_KBS_SERVER__TRUSTED_PROXIES"]) == [balancer]  # nginx, and nothing else
        assert services[replica]["depends_on"]["redis"] == {"condition": "service_healthy"}


REDIS_URL = "redis://127.0.0.1:6379/0"


def test_two_replicas_behind_the_balancer(
    tmp_path: Path, request: pytest.FixtureRequest, balancer: tuple[str, list[int]]
) -> None:
    url, ports = balancer
    database = new_database_url(request, "postgres", tmp_path)
    first = KbsServer(tmp_path / "conf", database_url=database, port=ports[0])
    second = KbsServer(tmp_path / "conf", database_url=database, init=False, port=ports[1])
    with first, second:
        first.admin.put_resource("default/key/1", b"through the balancer")
        first.admin.put_reference_value("sample_svn", ["1"])
        first.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        for _ in range(6):
            guest = Guest(url)
            token = guest.handshake()
            assert guest.decrypt(guest.resource("default/key/1", token).json()) == b"through the balancer"
        served = [httpx.get(s.url + "/metrics").text for s in (first, second)]
        # round robin: both replicas answered /auth requests of these handshakes
        assert all('kbs_auth_total{tee="sample"}' in text for text in served), served


def test_replicas_behind_the_balancer_share_the_auth_limit_through_redis(
    tmp_path: Path, request: pytest.FixtureRequest, balancer: tuple[str, list[int]]
) -> None:
    """The replicas' environment from docker-compose.yml, with the addresses of this machine (Redis on loopback, the
    balancer's address 127.0.0.1): guests' /auth budget is per client address (from nginx's X-Forwarded-For) and
    one for both replicas."""
    url, ports = balancer
    env = dict(_compose()["services"]["kbs-1"]["environment"])
    env["VERITEE_KBS_LIMITS__REDIS_URL"] = REDIS_URL
    env["VERITEE_KBS_SERVER__TRUSTED_PROXIES"] = '["127.0.0.1"]'
    store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        store.ping()
    except redis.RedisError:
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (scripts/redis-up starts it)")
    client, other = (f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}" for _ in range(2))
    keys = [f"veritee:rate:auth:{address}" for address in (client, other)]
    store.delete(*keys)
    request.addfinalizer(lambda: store.delete(*keys))
    database = new_database_url(request, "postgres", tmp_path)
    limits = {"rate_limit": {"auth_per_minute": 24}}  # a burst of 4 per client
    first = KbsServer(tmp_path / "conf", database_url=database, port=ports[0], config=limits, env=env)
    second = KbsServer(tmp_path / "conf", database_url=database, init=False, port=ports[1], env=env)
    body = {"version": "0.4.0", "tee": "sample"}
    with first, second, httpx.Client(base_url=url) as http:
        # The guest's address as nginx forwards it (the client's own X-Forwarded-For, with the peer nginx saw added).
        answers = [http.post("/kbs/v0/auth", json=body, headers={"X-Forwarded-For": client}) for _ in range(8)]
        assert [a.status_code for a in answers[:4]] == [200] * 4
        for refused in answers[4:]:  # per-process buckets would have let both replicas take 4 each
            assert_error(refused, 429, "RateLimited", "/auth")
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert http.post("/kbs/v0/auth", json=body, headers={"X-Forwarded-For": other}).status_code == 200
        served = [httpx.get(s.url + "/metrics").text for s in (first, second)]
    # round robin: each replica answered some of the 200s and some of the 429s
    assert all('kbs_auth_total{tee="sample"}' in text for text in served), served
    assert all('kbs_errors_total{variant="RateLimited"}' in text for text in served), served
