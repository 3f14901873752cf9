"""Run a real `attestation-agent serve` (this checkout) on a free loopback port or a unix socket.

with AgentService(kbs.url, tmp_path) as agent:
    agent.get("/cdh/resource/default/key/1").content
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import cli_env
from tests.integration._kbs_server import free_port

__all__ = ["AgentService"]


class AgentService:
    def __init__(
        self,
        kbs_url: str,
        folder: Path,
        *args: str,
        unix: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kbs_url = kbs_url
        self.unix = unix
        self.port = free_port()
        self.listen = f"unix:{unix}" if unix else f"127.0.0.1:{self.port}"
        self.url = "http://agent" if unix else f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = {"VERITEE_SYSROOT": str(folder / "no-tee"), **(env or {})}
        self.log = folder / f"agent-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None
        transport = httpx.HTTPTransport(uds=str(unix)) if unix else None
        self.http = httpx.Client(base_url=self.url, timeout=60, transport=transport)

    def start(self) -> AgentService:
        code = "import sys; from attestation_agent.cli import main; sys.exit(main())"
        argv = [sys.executable, "-c", code, "serve", "--kbs", self.kbs_url, "--listen", self.listen, *self.args]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=cli_env(self.env))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"attestation-agent serve exited with {self._process.returncode}: {self.output}")
            if self.unix is not None and not self.unix.is_socket():
                time.sleep(0.05)  # httpcore leaks the socket of a failed unix connect: wait for the file first
                continue
            try:
                if self.http.get("/info").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"attestation-agent serve did not become ready: {self.output}")

    @property
    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def get(self, target: str) -> httpx.Response:
        return self.http.get(target)

    def annotated_evidence(self) -> dict[str, Any]:
        """What the broker's policies saw of this guest: the `ear.veraison.annotated-evidence` of the CPU TEE in
        the agent's current KBS token (`{<tee>: claims, "init_data", "init_data_claims", ...}`)."""
        token = json.loads(self.get("/aa/token?token_type=kbs").content)["token"]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        annotated: dict[str, Any] = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
        return annotated

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        self.http.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> AgentService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
