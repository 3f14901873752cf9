"""What the audit tests share: the broker's database to tamper with, `kbs admin audit verify` and `export` run as
an operator runs them, and the resource, reference value and policy a guest's handshake needs."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine

from kbs.storage import normalise_url
from tests.conftest import run_cli
from tests.integration._helpers import SECRET
from tests.integration._kbs_server import KbsServer

__all__ = ["database", "export", "provision", "verify"]


def database(server: KbsServer) -> Engine:
    """The broker's database, to tamper with."""
    return create_engine(normalise_url(tomllib.loads(server.config_file.read_text())["database"]["url"]))


def verify(server: KbsServer, *extra: str) -> tuple[int, dict[str, Any], str]:
    """`kbs admin audit verify`: its exit code, its JSON and its message."""
    done = _audit_cli(server, "verify", *extra)
    return done.returncode, json.loads(done.stdout), done.stderr.decode()


def export(server: KbsServer, *extra: str) -> list[dict[str, Any]]:
    done = _audit_cli(server, "export", *extra)
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def _audit_cli(server: KbsServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    token = str(server.config_dir / "admin.token")
    return run_cli("kbs", "admin", "--url", server.url, "--token", token, "audit", *args)


def provision(server: KbsServer) -> None:
    server.admin.put_resource("default/key/1", SECRET)
    server.admin.put_reference_value("sample_svn", ["1"])
    server.admin.set_resource_policy((Path("policies") / "demo_resource_allow_sample.rego").read_text())
