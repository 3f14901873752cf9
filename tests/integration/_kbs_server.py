"""Run a real `kbs serve` on a free loopback port, configured by `kbs init` plus overrides, for end-to-end tests.

with KbsServer(tmp_path, config={"verifier": {"allow_sample": True}}) as kbs:
    kbs.admin.put_resource("default/key/1", b"secret")
    ... kbs.url ...
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from kbs.admin_client import AdminClient, tls_verify
from tests.conftest import cli_env, run_cli

__all__ = ["UNLIMITED", "KbsServer", "free_port"]

# Config for tests whose guests all come from 127.0.0.1: their load is the test, not an abuse to rate-limit.
UNLIMITED = {"rate_limit": {"auth_per_minute": 0, "attest_per_minute": 0}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class KbsServer:
    def __init__(
        self,
        folder: Path,
        *,
        config: dict[str, Any] | None = None,
        allow_sample: bool = True,
        database_url: str | None = None,
        init: bool = True,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
        workers: int | None = None,
        log_level: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config_dir = folder
        self.config_file = folder / "kbs.toml"
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify: bool | str = str(tls[0]) if tls else True
        self._process: subprocess.Popen[bytes] | None = None
        self.workers = workers
        # Worker processes each import and start the whole broker: give a loaded machine time for that.
        self.ready_timeout = 30.0 * (workers or 1)
        self.log_level = log_level
        self.env = env  # extra environment of `kbs serve` (VERITEE_KBS_* settings, as docker-compose.yml sets them)
        if init:
            args = ["init", str(folder), "--force"] + (["--allow-sample"] if allow_sample else [])
            done = run_cli("kbs", *args)
            assert done.returncode == 0, done.stderr.decode()
        document = tomllib.loads(self.config_file.read_text())
        if database_url:
            config = _merge({"database": {"url": database_url}}, config or {})
        if tls:
            config = _merge({"server": {"tls_cert": str(tls[0]), "tls_key": str(tls[1])}}, config or {})
        document = _merge(document, config or {})
        self.config_file.write_text(tomli_w.dumps(document))
        self.token = (folder / "admin.token").read_text().strip()
        self.admin = AdminClient(self.url, self.token, verify=self.verify)
        self.log = folder / f"serve-{self.port}.log"

    def start(self) -> KbsServer:
        code = "import sys; from kbs.cli import main; sys.exit(main())"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    code,
                    "serve",
                    "--config",
                    str(self.config_file),
                    "--port",
                    str(self.port),
                    *(["--log-level", self.log_level] if self.log_level else []),
                    *(["--workers", str(self.workers)] if self.workers else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=cli_env(self.env),
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"kbs serve exited with {self._process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1, verify=tls_verify(self.verify)).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        # Not left running: an orphaned broker holds its port and database, and its Popen's ResourceWarning would
        # fail whichever later test the garbage collector happens to run in.
        self.stop()
        raise RuntimeError(f"kbs serve did not become ready: {self.log.read_text()}")

    def cli(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """`kbs admin --url URL --token FILE ARGS...` against this broker, as an operator runs it."""
        token = str(self.config_dir / "admin.token")
        return run_cli("kbs", "admin", "--url", self.url, "--token", token, *args, input=input)

    @property
    def pid(self) -> int:
        """The `kbs serve` process (with `--workers N`, the parent of the N workers)."""
        if self._process is None:
            raise RuntimeError("the broker is not running")
        return self._process.pid

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> KbsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.admin.close()  # close keep-alive connections first: uvicorn waits for them when shutting down
        self.stop()
