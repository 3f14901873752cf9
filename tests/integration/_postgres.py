"""A private PostgreSQL server for tests that stop and start the database: the shared server on 127.0.0.1:5432 serves
every other test running at the same time, so outages are staged on a cluster of the test's own (initdb into a
temporary directory, its own port, its socket in that directory).

    with PrivatePostgres() as pg:
        url = pg.url          # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.stop(); pg.start()
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration._kbs_server import free_port

__all__ = ["PrivatePostgres"]


def _bin(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if not found:
        pytest.fail(f"PostgreSQL's {tool} is not installed (scripts/setup installs postgresql)")
    return str(found[-1])


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: as root the cluster belongs to the postgres account.
        self._user = "postgres" if os.geteuid() == 0 else None
        self._folder = Path(tempfile.mkdtemp(prefix="veritee-pg-"))
        self.data = self._folder / "data"
        self.log = self._folder / "server.log"
        self.running = False
        if self._user:
            account = pwd.getpwnam(self._user)
            os.chown(self._folder, account.pw_uid, account.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", self._user, "--", *args] if self._user else list(args)
        done = subprocess.run(command, capture_output=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode()} {done.stdout.decode()}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self._folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.running = True

    def stop(self) -> None:
        """A fast shutdown: the server ends every open connection and stops, as a restart by an operator does."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
