"""Real registries for the guest's pull tests: Debian's `docker-registry` (the CNCF distribution registry) on a free
loopback port with a private storage folder, optionally behind htpasswd (Basic) or token (Bearer) authentication;
a token server for the latter; a hostile proxy in front of a real registry that alters what it serves; and what
puts images in them: skopeo (with ocicrypt key providers), cosign, and `publish_signed` (a one-layer image, encrypted,
signed into sigstore attachments and pushed).

A missing tool fails the test that needs it, with the reason: nothing here skips.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT, cli_env
from tests.guest._images import dir_, file_, tar_bytes, write_image
from tests.integration._kbs_server import free_port

__all__ = [
    "PASSPHRASE",
    "SKOPEO",
    "HostileProxy",
    "RegistryServer",
    "Response",
    "TokenServer",
    "auth_json",
    "cosign",
    "htpasswd",
    "publish_signed",
    "signing_key",
    "skopeo",
    "tool",
]

TOOLS = ROOT / "scripts" / "trixie-tools"
SKOPEO = ROOT / "scripts" / "skopeo-keyprovider"
PASSPHRASE = "test-only-passphrase"  # of every cosign key the tests make


def tool(name: str) -> str:
    """The path of cosign or ctr-imgcrypt (scripts/trixie-tools), or docker-registry / htpasswd / containerd."""
    if name in ("cosign", "ctr-imgcrypt"):
        done = subprocess.run([str(TOOLS)], capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"{name} is not available: {done.stderr.strip()}")
        return str(Path(done.stdout.strip()) / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/setup installs it with apt)")
    return found


class RegistryServer:
    """`docker-registry serve` on 127.0.0.1:<free port>; `auth`: None, ("htpasswd", FILE) or ("token", TokenServer)."""

    def __init__(self, folder: Path, auth: tuple[str, Any] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(folder / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "test-only-secret"},
        }
        if auth is not None and auth[0] == "htpasswd":
            config["auth"] = {"htpasswd": {"realm": "veritee-test", "path": str(auth[1])}}
        elif auth is not None:
            token: TokenServer = auth[1]
            config["auth"] = {"token": {"realm": token.url, "service": token.service, "issuer": token.issuer,
                                        "rootcertbundle": str(token.cert_file)}}  # fmt: skip
        # The registry reads YAML; JSON is YAML.
        (folder / "config.yml").write_text(json.dumps(config))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RegistryServer:
        with (self.folder / "registry.log").open("wb") as log:
            self._process = subprocess.Popen(
                [tool("docker-registry"), "serve", str(self.folder / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"docker-registry exited: {(self.folder / 'registry.log').read_text()}")
            try:
                if httpx.get(f"http://{self.host}/v2/", timeout=1).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"docker-registry did not answer: {(self.folder / 'registry.log').read_text()}")

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


def skopeo(*args: str, env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """skopeo with ocicrypt key providers (scripts/skopeo-keyprovider), the host's containers policy ignored; with
    `check`, a failure fails the test with skopeo's message."""
    done = subprocess.run(
        [str(SKOPEO), "--insecure-policy", *args], capture_output=True, env=cli_env(env), timeout=300, check=False
    )
    assert not check or done.returncode == 0, f"skopeo {args}: {done.stderr.decode()}"
    return done


def cosign(*args: str, cwd: Path) -> None:
    """cosign in `cwd` (where its keys are, and its HOME), keys under PASSPHRASE; a failure fails the test."""
    env = cli_env({"COSIGN_PASSWORD": PASSPHRASE, "HOME": str(cwd), "TUF_ROOT": str(cwd / "tuf")})
    done = subprocess.run([tool("cosign"), *args], capture_output=True, env=env, timeout=300, check=False, cwd=cwd)
    assert done.returncode == 0, f"cosign {args}: {done.stderr.decode()}"


def signing_key(folder: Path) -> list[str]:
    """A new cosign key pair in folder (cosign.key, cosign.pub), and the arguments of a skopeo copy that signs with it
    into sigstore attachments (what the guest's policy reads)."""
    cosign("generate-key-pair", cwd=folder)
    (folder / "pass").write_text(PASSPHRASE)
    (folder / "registries.d").mkdir()
    (folder / "registries.d" / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    return ["--registries.d", str(folder / "registries.d"), "--sign-passphrase-file", str(folder / "pass"),
            "--sign-by-sigstore-private-key", str(folder / "cosign.key")]  # fmt: skip


def publish_signed(folder: Path, motd: bytes, public_key: Path, destination: str, *flags: str) -> None:
    """An image of one layer (etc/motd), its layer encrypted to `public_key` (JWE) and signed by a new cosign key
    (folder/cosign.pub), pushed to `destination` (docker://host/repo:tag) with skopeo's `flags` added."""
    write_image(folder / "plain", [tar_bytes([dir_("etc"), file_("etc/motd", motd)])], tag="v1")
    sign = signing_key(folder)
    skopeo("copy", *sign, "--dest-tls-verify=false", "--encryption-key", f"jwe:{public_key}", *flags,
           f"oci:{folder / 'plain'}:v1", destination, check=True)  # fmt: skip


def htpasswd(path: Path, user: str, password: str) -> Path:
    subprocess.run([tool("htpasswd"), "-Bbc", str(path), user, password], check=True, capture_output=True)
    return path


def auth_json(path: Path, host: str, user: str, password: str) -> Path:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": encoded}}}))
    return path


Response = tuple[int, dict[str, str], bytes]


class _Threaded(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        handler = self._handler_class()
        self._server = _Threaded(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = outer.answer(self.path, dict(self.headers))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def log_message(self, *_args: object) -> None:
                pass

        return Handler

    def answer(self, path: str, headers: dict[str, str]) -> Response:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class HostileProxy(_Server):
    """Forwards GETs to `upstream` (a real registry) and lets `alter(path, response)` change each answer; `folder`
    holds what the test made alongside (keys)."""

    def __init__(self, upstream: str, folder: Path) -> None:
        super().__init__()
        self.upstream = upstream
        self.folder = folder
        self.alter: Callable[[str, Response], Response] = lambda _path, response: response

    def fetch(self, path: str, accept: str | None = None) -> Response:
        headers = {"Accept": accept} if accept else {}
        r = httpx.get(f"http://{self.upstream}{path}", headers=headers, timeout=30)
        keep = {name: r.headers[name] for name in ("Content-Type", "Docker-Content-Digest") if name in r.headers}
        return r.status_code, keep, r.content

    def answer(self, path: str, headers: dict[str, str]) -> Response:
        return self.alter(path, self.fetch(path, headers.get("Accept")))


class TokenServer(_Server):
    """A distribution token server (spec/auth/token.md): Basic credentials in, an ES256 JWT with an x5c chain out."""

    service = "veritee-test-registry"
    issuer = "veritee-test-issuer"

    def __init__(self, folder: Path, user: str, password: str) -> None:
        super().__init__()
        self.url = f"http://{self.host}/token"
        self._basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "veritee test token signer")])
        now = time.time()
        import datetime as dt

        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime.fromtimestamp(now - 3600, dt.UTC))
            .not_valid_after(dt.datetime.fromtimestamp(now + 3600, dt.UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = folder / "token-signer.pem"
        folder.mkdir(parents=True, exist_ok=True)
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[str] = []

    def answer(self, path: str, headers: dict[str, str]) -> Response:
        self.requests.append(path)
        if headers.get("Authorization") != self._basic:
            return 401, {"Content-Type": "application/json"}, b'{"details": "bad credentials"}'
        query = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
        scope = httpx.URL("http://x/?" + path.partition("?")[2]).params.get("scope", "")
        _, name, actions = scope.split(":") if scope.count(":") == 2 else ("", "", "")
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "tester", "aud": query.get("service"), "iat": now, "nbf": now - 10,
                  "exp": now + 300, "jti": hashlib.sha256(str(now).encode()).hexdigest(),
                  "access": [{"type": "repository", "name": name, "actions": actions.split(",")}]}  # fmt: skip
        x5c = [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()]
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": x5c})
        return 200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()
