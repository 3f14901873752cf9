"""A real software TPM for tests: swtpm on free loopback ports with temporary state, optionally manufactured
by `swtpm_setup` with an EK certificate issued by a local CA (swtpm_localca) whose certificates tests trust.

    with Swtpm(tmp_path, ek_certificate=True) as tpm:
        tpm.tcti            # "swtpm:host=127.0.0.1,port=P" for tpm2-tss / VERITEE_TPM_TCTI
        tpm.ca_certificates # PEM bytes of the local CA's root and issuer (EK certificate chain)

Missing swtpm or tpm2-pytss fail the test with a clear message (scripts/setup installs both): never a skip.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

STARTUP_TIMEOUT = 10.0


def require_swtpm() -> None:
    missing = [tool for tool in ("swtpm", "swtpm_setup", "swtpm_localca") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install the apt packages swtpm and swtpm-tools (scripts/setup)")
    if importlib.util.find_spec("tpm2_pytss") is None:
        pytest.fail("tpm2-pytss is not installed: pip install 'veritee[tpm]' (needs apt libtss2-dev)")


def _free_port_pair() -> int:
    """A port P with P and P+1 both free on 127.0.0.1 (server and control channel)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


class Swtpm:
    def __init__(self, directory: Path, *, ek_certificate: bool = False, banks: str = "sha1,sha256") -> None:
        require_swtpm()
        self.directory = directory
        self.state = directory / "state"
        self.ca = directory / "ca"
        self.ek_certificate = ek_certificate
        self.banks = banks
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    @property
    def ca_certificates(self) -> tuple[bytes, ...]:
        """The local CA's root and intermediate (issuer) certificates, PEM."""
        return (
            (self.ca / "swtpm-localca-rootca-cert.pem").read_bytes(),
            (self.ca / "issuercert.pem").read_bytes(),
        )

    def _manufacture(self) -> None:
        self.ca.mkdir(parents=True, exist_ok=True)
        localca = self.directory / "swtpm-localca.conf"
        localca.write_text(
            f"statedir = {self.ca}\nsigningkey = {self.ca}/signkey.pem\n"
            f"issuercert = {self.ca}/issuercert.pem\ncertserial = {self.ca}/certserial\n"
        )
        setup = self.directory / "swtpm_setup.conf"
        setup.write_text(
            f"create_certs_tool = {shutil.which('swtpm_localca')}\ncreate_certs_tool_config = {localca}\n"
            "create_certs_tool_options = /etc/swtpm-localca.options\n"
        )
        subprocess.run(
            [
                "swtpm_setup", "--tpm2", "--tpmstate", str(self.state), "--config", str(setup),
                "--create-ek-cert", "--create-platform-cert", "--pcr-banks", self.banks, "--overwrite",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip

    def start(self) -> Swtpm:
        self.state.mkdir(parents=True, exist_ok=True)
        if self.ek_certificate:
            self._manufacture()
        for _ in range(5):
            self.port = _free_port_pair()
            log = self.directory / "swtpm.log"
            self._process = subprocess.Popen(
                [
                    "swtpm", "socket", "--tpm2",
                    "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                    "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                    "--tpmstate", f"dir={self.state}",
                    "--flags", "not-need-init,startup-clear",
                    "--log", f"file={log}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._wait():
                return self
            self.stop()
        raise RuntimeError(f"swtpm did not start; see {self.directory / 'swtpm.log'}")

    def _wait(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
