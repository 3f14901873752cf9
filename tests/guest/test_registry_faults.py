"""A hostile registry: a proxy in front of a real one alters what it serves (tampered manifest or config, a blob
that does not match its digest, HTML, HTTP 500, a redirect to another host, an oversized manifest). Each pull is
refused with exit 1 and a message naming what failed, and leaves nothing at the destination.

The proxy is a mirror of the real registry, so the policy maps its name to the signed one (remapIdentity).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.guest._registry import HostileProxy, RegistryServer, Response, publish_signed

pytestmark = pytest.mark.skopeo


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, Path]]) -> Iterator[HostileProxy]:
    folder = tmp_path_factory.mktemp("hostile")
    with RegistryServer(folder / "registry") as registry:
        publish_signed(folder, b"mirrored\n", keys["ec"][1], f"docker://{registry.host}/app:v1")
        with HostileProxy(registry.host, folder) as hostile:
            yield hostile


def pull(
    proxy: HostileProxy, tmp_path: Path, keys: dict[str, tuple[Path, Path]], reference: str = "app:v1"
) -> subprocess.CompletedProcess[bytes]:
    policy = {
        "default": [{"type": "reject"}],
        "transports": {"docker": {f"{proxy.host}/app": [{
            "type": "sigstoreSigned", "keyPath": str(proxy.folder / "cosign.pub"),
            "signedIdentity": {"type": "remapIdentity", "prefix": f"{proxy.host}/app",
                               "signedPrefix": f"{proxy.upstream}/app"},
        }]}},
    }  # fmt: skip
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    return run_cli("guest", "unpack", "--insecure-registry", proxy.host, "--policy", str(tmp_path / "policy.json"),
                   "--key", f"file:{keys['ec'][0]}", f"docker://{proxy.host}/{reference}",
                   str(tmp_path / "root"))  # fmt: skip


def _manifest(proxy: HostileProxy) -> tuple[str, dict[str, object]]:
    _, headers, body = proxy.fetch("/v2/app/manifests/v1", "application/vnd.oci.image.manifest.v1+json")
    return headers["Docker-Content-Digest"], json.loads(body)


def test_the_mirror_pulls_when_nothing_is_altered(
    proxy: HostileProxy, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    proxy.alter = lambda _path, response: response
    done = pull(proxy, tmp_path, keys)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "mirrored\n"


def _tampered_manifest(proxy: HostileProxy) -> Callable[[str, Response], Response]:
    """Serve an altered manifest for the tag, and the real signature at the altered digest's attachment tag."""
    digest, doc = _manifest(proxy)
    doc["annotations"] = {"injected": "by the mirror"}
    body = json.dumps(doc).encode()
    fake = "sha256:" + hashlib.sha256(body).hexdigest()

    def alter(path: str, response: Response) -> Response:
        if path == "/v2/app/manifests/v1":
            return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body
        if path == f"/v2/app/manifests/sha256-{fake[7:]}.sig":
            return proxy.fetch(
                f"/v2/app/manifests/sha256-{digest[7:]}.sig", "application/vnd.oci.image.manifest.v1+json"
            )
        return response

    return alter


def _blob_altered(proxy: HostileProxy, which: str) -> Callable[[str, Response], Response]:
    _, doc = _manifest(proxy)
    config = doc["config"]
    layers = doc["layers"]
    assert isinstance(config, dict)
    assert isinstance(layers, list)
    target = config["digest"] if which == "config" else layers[0]["digest"]

    def alter(path: str, response: Response) -> Response:
        if path == f"/v2/app/blobs/{target}":
            status, headers, body = response
            return status, headers, body[:-1] + bytes([body[-1] ^ 1])
        return response

    return alter


def _redirect(proxy: HostileProxy) -> Callable[[str, Response], Response]:
    def alter(path: str, response: Response) -> Response:
        if "/blobs/" in path:
            return 307, {"Location": f"http://127.0.0.2:{proxy.port}{path}"}, b""
        return response

    return alter


def _answer(on: str, answer: Response) -> Callable[[HostileProxy], Callable[[str, Response], Response]]:
    return lambda _proxy: lambda path, response: answer if on in path else response


OCI_MANIFEST = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
OVERSIZED = json.dumps({"schemaVersion": 2, "padding": "x" * (4 * 1024 * 1024)}).encode()
CASES: dict[str, tuple[Callable[[HostileProxy], Callable[[str, Response], Response]], str, str]] = {
    "tampered-manifest": (_tampered_manifest, "app:v1", "signed critical.image.docker-manifest-digest is"),
    "tampered-config": (lambda p: _blob_altered(p, "config"), "app:v1", "config: blob of"),
    "blob-digest-mismatch": (lambda p: _blob_altered(p, "layer"), "app:v1", "bytes with digest"),
    "html": (_answer("/manifests/v1", (200, {"Content-Type": "text/html"}, b"<html>login</html>")), "app:v1",
             "Content-Type is 'text/html', expected an image manifest or index media type"),
    "http-500": (_answer("/manifests/v1", (500, {}, b"oops")), "app:v1", "answered HTTP 500"),
    "cross-host-redirect": (_redirect, "app:v1", "another origin than"),
    "oversized-manifest": (_answer("/manifests/v1", (200, OCI_MANIFEST, OVERSIZED)), "app:v1",
                           "over the 4194304-byte cap"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_registry_is_refused(
    proxy: HostileProxy, tmp_path: Path, keys: dict[str, tuple[Path, Path]], case: str
) -> None:
    make, reference, message = CASES[case]
    proxy.alter = make(proxy)
    try:
        done = pull(proxy, tmp_path, keys, reference)
    finally:
        proxy.alter = lambda _path, response: response
    assert done.returncode == 1, done.stderr.decode()
    assert message in done.stderr.decode()
    assert not (tmp_path / "root").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".root.partial-")]


def test_tampered_manifest_pulled_by_digest(
    proxy: HostileProxy, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    digest, doc = _manifest(proxy)
    doc["annotations"] = {"injected": "by the mirror"}
    body = json.dumps(doc).encode()
    proxy.alter = lambda path, response: (
        (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body) if digest in path else response
    )
    try:
        done = pull(proxy, tmp_path, keys, f"app@{digest}")
    finally:
        proxy.alter = lambda _path, response: response
    assert done.returncode == 1
    assert f"content digest is sha256:{hashlib.sha256(body).hexdigest()}, expected {digest}" in done.stderr.decode()
    assert not (tmp_path / "root").exists()
