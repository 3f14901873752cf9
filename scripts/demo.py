"""The end-to-end demo: a broker on SQLite, an admin provisioning a secret, a guest attesting and fetching it.

Every step runs the real console scripts (`kbs`, `attestation-agent`) as a user would.
"""

from __future__ import annotations

import hashlib
import json
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


def script(name: str, module: str) -> list[str]:
    """The installed console script, or the same entry point through this interpreter (a source checkout)."""
    path = BIN / name
    return [str(path)] if path.exists() else [sys.executable, "-m", module]


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


def encrypted_image_demo(work: Path, url: str, admin: list[str]) -> None:
    """Encrypt a small image for key id kbs:///default/image-kek/1, then attest, decrypt and unpack it."""
    step("owner: a small image built with umoci (one file, /etc/hello.txt)")
    content = work / "content" / "etc"
    content.mkdir(parents=True)
    (content / "hello.txt").write_text("Hello from inside an encrypted container image!\n")
    plain, encrypted = work / "image", work / "image-encrypted"
    run("umoci", "init", "--layout", str(plain))
    run("umoci", "new", "--image", f"{plain}:v1")
    run("umoci", "insert", "--image", f"{plain}:v1", str(content), "/etc")

    kid = "kbs:///default/image-kek/1"
    which = subprocess.run([str(ROOT / "scripts" / "skopeo-keyprovider"), "--which"], capture_output=True, check=False)
    if which.returncode == 0:
        step(f"owner: skopeo encrypts every layer; `kbs admin keyprovider` wraps the layer keys with the KEK at {kid}")
        config = work / "ocicrypt-keyprovider.json"
        provider = {"cmd": {"path": admin[0], "args": [*admin[1:], "keyprovider"]}}
        config.write_text(json.dumps({"key-providers": {"attestation-agent": provider}}))
        env = {**os.environ, "OCICRYPT_KEYPROVIDER_CONFIG": str(config)}
        print(f"    $ OCICRYPT_KEYPROVIDER_CONFIG={config} skopeo-keyprovider copy --encryption-key provider:...")
        subprocess.run(
            [str(ROOT / "scripts" / "skopeo-keyprovider"), "--insecure-policy", "copy", "--encryption-key",
             f"provider:attestation-agent:{kid}", f"oci:{plain}:v1", f"oci:{encrypted}:v1"],
            check=True, env=env,
        )  # fmt: skip
    else:
        step("owner: no skopeo with key providers here; encrypting with Veritee's ocicrypt-compatible encryptor")
        print(f"    ({which.stderr.decode().strip()})")
        kek = os.urandom(32)
        (work / "image-kek.bin").write_bytes(kek)
        run(*admin, "resource", "put", kid.removeprefix("kbs:///"), str(work / "image-kek.bin"))
        from guest._encrypt import encrypt_image, provider_recipient  # noqa: PLC0415

        encrypt_image(plain, encrypted, provider_recipient(kek, kid), tag="v1")
    manifest = json.loads((encrypted / "index.json").read_text())["manifests"][0]["digest"].split(":")[1]
    layers = json.loads((encrypted / "blobs" / "sha256" / manifest).read_text())["layers"]
    print(f"    encrypted layers: {[layer['mediaType'] for layer in layers]}")

    step("guest: attest to the KBS, fetch the KEK named by the layer's kid, decrypt (HMAC first) and unpack")
    rootfs = work / "rootfs"
    run(*script("guest", "guest.cli"), "unpack", "--kbs", url, f"oci:{encrypted}:v1", str(rootfs))
    print(f"    $ cat {rootfs / 'etc' / 'hello.txt'}")
    print("    " + (rootfs / "etc" / "hello.txt").read_text().strip())


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="veritee-demo-"))
    kbs, agent = script("kbs", "kbs.cli"), script("attestation-agent", "attestation_agent.cli")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin = [*kbs, "admin", "--url", url, "--token", str(work / "kbs" / "admin.token")]
    server: subprocess.Popen[bytes] | None = None
    try:
        step("kbs init: configuration, key-encryption key, admin key pair and admin token (sample TEE allowed)")
        run(*kbs, "init", str(work / "kbs"), "--allow-sample")

        step(f"kbs serve on {url} (SQLite in {work / 'kbs'})")
        log = (work / "kbs-serve.log").open("wb")
        server = subprocess.Popen(
            [*kbs, "serve", "--config", str(work / "kbs" / "kbs.toml"), "--port", str(port)], stdout=log, stderr=log
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
        run(*agent, "get-resource", "--kbs", url, "kbs:///default/key/1", "--out", str(out))
        released = out.read_bytes()
        if released != secret:
            print("released secret differs from the provisioned one", file=sys.stderr)
            return 1
        print(f"    released secret sha256: {hashlib.sha256(released).hexdigest()} (matches the provisioned one)")

        encrypted_image_demo(work, url, admin)

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
