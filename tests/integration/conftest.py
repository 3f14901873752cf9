"""Integration fixtures: databases (SQLite file and a fresh PostgreSQL database), real `kbs serve` processes, and
nginx with deploy/nginx.conf in front of two of them."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT
from tests.integration._guest import OPEN_GUESTS
from tests.integration._kbs_server import KbsServer, free_port


@pytest.fixture(autouse=True)
def _close_guests() -> Iterator[None]:
    yield
    while OPEN_GUESTS:
        OPEN_GUESTS.pop().close()


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_up() -> None:
    """PostgreSQL runs on this machine type; start the cluster when it is down (as scripts/postgres-up does)."""
    for attempt in range(2):
        try:
            with psycopg.connect(PG_ADMIN, connect_timeout=3):
                return
        except psycopg.OperationalError:
            if attempt == 0 and shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
                version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                    check=False,
                    capture_output=True,
                )
                time.sleep(2)
    pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started")


def new_database_url(request: pytest.FixtureRequest, kind: str, folder: Path) -> str:
    """A new empty database of the given kind ("sqlite" or "postgres"), dropped when the requester ends."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'kbs.sqlite'}"
    _postgres_up()
    name = f"veritee_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: _drop(name))
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_database_url(request, request.param, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def kbs_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    """A broker accepting the sample TEE, shared by a module's tests, once on SQLite and once on PostgreSQL."""
    folder = tmp_path_factory.mktemp(f"kbs-{request.param}")
    url = new_database_url(request, request.param, folder)
    with KbsServer(folder / "conf", database_url=url) as server:
        yield server


def need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        pytest.fail(f"{tool} is not installed: scripts/setup installs it (apt package {tool})")
    return path


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
