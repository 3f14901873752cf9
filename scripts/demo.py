"""The end-to-end demo: a broker on SQLite, an admin provisioning a secret, a guest attesting and fetching it.

Every step runs the real console scripts (`kbs`, `attestation-agent`) as a user would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    print("    $ " + " ".join(args), flush=True)
    return subprocess.run(args, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"kbs serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("kbs serve did not become ready")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="veritee-demo-"))
    kbs, agent = str(BIN / "kbs"), str(BIN / "attestation-agent")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin = [kbs, "admin", "--url", url, "--token", str(work / "kbs" / "admin.token")]
    server: subprocess.Popen[bytes] | None = None
    try:
        step("kbs init: configuration, key-encryption key, admin key pair and admin token (sample TEE allowed)")
        run(kbs, "init", str(work / "kbs"), "--allow-sample")

        step(f"kbs serve on {url} (SQLite in {work / 'kbs'})")
        log = (work / "kbs-serve.log").open("wb")
        server = subprocess.Popen(
            [kbs, "serve", "--config", str(work / "kbs" / "kbs.toml"), "--port", str(port)], stdout=log, stderr=log
        )
        wait_ready(url, server)

        step("admin: provision the secret default/key/1, a reference value, and the DEMO resource policy")
        secret = os.urandom(32)
        (work / "secret.bin").write_bytes(secret)
        run(*admin, "resource", "put", "default/key/1", str(work / "secret.bin"))
        run(*admin, "reference-value", "put", "sample_svn", "1")
        run(*admin, "policy", "set", "resource", str(ROOT / "policies" / "demo_resource_allow_sample.rego"))

        step("guest: attestation-agent get-resource (auth, attest with evidence bound to nonce + key, JWE fetch)")
        out = work / "released.bin"
        run(agent, "get-resource", "--kbs", url, "kbs:///default/key/1", "--out", str(out))
        released = out.read_bytes()
        if released != secret:
            print("released secret differs from the provisioned one", file=sys.stderr)
            return 1
        print(f"    released secret sha256: {hashlib.sha256(released).hexdigest()} (matches the provisioned one)")

        step("admin: the audit log records the release (never the secret)")
        run(*admin, "audit", "--limit", "3")
        print("\ndemo: OK")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
