"""docker-compose.yml as plain processes: its syntax checked by docker-compose, its load balancer (nginx with
deploy/nginx.conf) in front of two `kbs serve` replicas on one PostgreSQL database, a guest attesting through it."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import policies
from tests.conftest import ROOT
from tests.integration._guest import Guest
from tests.integration._kbs_server import KbsServer, free_port
from tests.integration.conftest import new_database_url


def need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        pytest.fail(f"{tool} is not installed: scripts/setup installs it (apt package {tool})")
    return path


def test_compose_file_is_valid() -> None:
    done = subprocess.run(
        [need("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    text = (ROOT / "docker-compose.yml").read_text()
    for service in ("postgres:", "kbs-1:", "kbs-2:", "lb:"):
        assert f"\n  {service}" in text


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """nginx with deploy/nginx.conf, its upstreams pointed at two local ports; yields (url, upstream ports)."""
    ports = [free_port(), free_port()]
    listen = free_port()
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("server kbs-1:8080;", f"server 127.0.0.1:{ports[0]};")
    conf = conf.replace("server kbs-2:8080;", f"server 127.0.0.1:{ports[1]};")
    conf = re.sub(r"listen 8080;", f"listen 127.0.0.1:{listen};", conf)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(conf)
    log = prefix / "error.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [need("nginx"), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stderr=stderr,
        )
    time.sleep(0.5)
    assert process.poll() is None, log.read_text()
    yield f"http://127.0.0.1:{listen}", ports
    process.terminate()
    process.wait(timeout=10)


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
