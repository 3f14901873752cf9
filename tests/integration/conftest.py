"""Integration fixtures: databases (SQLite file and a fresh PostgreSQL database), real `kbs serve` processes."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration._guest import OPEN_GUESTS
from tests.integration._kbs_server import KbsServer


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
