"""Interop with containerd's imgcrypt: a multi-platform image encrypted by `ctr-imgcrypt images encrypt` in a real
containerd (a private instance: its own root, state and socket), then
- exported with `ctr-imgcrypt images export` (index.json -> image index -> per-platform manifests): unpacks;
- pushed with `ctr-imgcrypt images push` to the real registry and signed by cosign: pulls only when the chosen
  platform's own manifest is signed (`cosign sign --recursive`), not when only the index is.
A tool that cannot be had fails the test with the reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.guest._images import dir_, file_, tar_bytes, write_image
from tests.guest._registry import RegistryServer, cosign, tool

pytestmark = pytest.mark.skopeo

INDEX = "application/vnd.oci.image.index.v1+json"


class Containerd:
    """`containerd` as a plain process; `ctr(*args)` runs ctr-imgcrypt against it in namespace `veritee-test`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))  # a short path: the socket's limit is 108
        self.socket = self.folder / "c.sock"
        disabled = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]  # fmt: skip
        (self.folder / "config.toml").write_text(
            f'version = 2\nroot = "{self.folder}/root"\nstate = "{self.folder}/state"\n'
            f"disabled_plugins = {json.dumps(disabled)}\n"
            f'[grpc]\n  address = "{self.socket}"\n[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._ctr = tool("ctr-imgcrypt")

    def __enter__(self) -> Containerd:
        with (self.folder / "log").open("wb") as log:
            self._process = subprocess.Popen(
                [tool("containerd"), "--config", str(self.folder / "config.toml")], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start: {(self.folder / 'log').read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=20)
        shutil.rmtree(self.folder, ignore_errors=True)

    def ctr(self, *args: str) -> str:
        done = subprocess.run([self._ctr, "-a", str(self.socket), "-n", "veritee-test", *args], capture_output=True,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, f"ctr-imgcrypt {args}: {done.stderr.decode()}"
        return done.stdout.decode()


def _multi_platform(directory: Path) -> None:
    """A plain layout whose index.json points to an image index for linux/amd64 and linux/arm64."""
    write_image(directory, [tar_bytes([dir_("etc"), file_("etc/motd", b"encrypted by imgcrypt\n")])], tag=None)
    manifest = json.loads((directory / "index.json").read_text())["manifests"][0]
    entries = [{**manifest, "platform": {"os": "linux", "architecture": arch}} for arch in ("amd64", "arm64")]
    body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode()
    digest = hashlib.sha256(body).hexdigest()
    (directory / "blobs/sha256" / digest).write_bytes(body)
    top = {"mediaType": INDEX, "digest": f"sha256:{digest}", "size": len(body),
           "annotations": {"org.opencontainers.image.ref.name": "v1"}}  # fmt: skip
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, Path]]) -> Iterator[Containerd]:
    folder = tmp_path_factory.mktemp("imgcrypt")
    _multi_platform(folder / "plain")
    with tarfile.open(folder / "plain.tar", "w") as tar:
        tar.add(folder / "plain", arcname=".")
    with Containerd() as containerd:
        containerd.ctr("images", "import", "--no-unpack", "--all-platforms", "--base-name", "localhost/multi",
                       str(folder / "plain.tar"))  # fmt: skip
        containerd.ctr("images", "encrypt", "--recipient", f"jwe:{keys['rsa'][1]}", "localhost/multi:v1",
                       "localhost/multi:enc")  # fmt: skip
        yield containerd


def test_ctr_imgcrypt_export_with_nested_index_unpacks(
    encrypted: Containerd, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    encrypted.ctr("images", "export", "--all-platforms", str(tmp_path / "enc.tar"), "localhost/multi:enc")
    with tarfile.open(tmp_path / "enc.tar") as tar:
        tar.extractall(tmp_path / "enc", filter="data")
    top = json.loads((tmp_path / "enc" / "index.json").read_text())["manifests"][0]
    assert top["mediaType"] == INDEX  # the nested index that guest refused before
    for platform in ("linux/amd64", "linux/arm64"):
        root = tmp_path / platform.replace("/", "-")
        done = run_cli("guest", "unpack", "--platform", platform, "--key", f"file:{keys['rsa'][0]}",
                       f"oci:{tmp_path / 'enc'}:enc", str(root))  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert (root / "etc/motd").read_text() == "encrypted by imgcrypt\n"


def test_pushed_multi_platform_image_needs_its_platform_manifest_signed(
    encrypted: Containerd, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    with RegistryServer(tmp_path / "registry") as registry:
        remote = f"{registry.host}/multi:enc"
        encrypted.ctr("images", "tag", "--force", "localhost/multi:enc", remote)
        encrypted.ctr("images", "push", "--plain-http", remote)
        cosign("generate-key-pair", cwd=tmp_path)
        flags = ["--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry",
                 "-y"]  # fmt: skip
        cosign("sign", *flags, remote, cwd=tmp_path)  # the index only
        policy = {"default": [{"type": "sigstoreSigned", "keyPath": str(tmp_path / "cosign.pub"),
                               "signedIdentity": {"type": "matchRepository"}}]}  # fmt: skip
        (tmp_path / "policy.json").write_text(json.dumps(policy))
        args = ["--policy", str(tmp_path / "policy.json"), "--insecure-registry", registry.host,
                "--key", f"file:{keys['rsa'][0]}", f"docker://{remote}"]  # fmt: skip
        done = run_cli("guest", "unpack", *args, str(tmp_path / "root"))
        assert done.returncode == 1
        assert "unsigned: no sigstore signature is attached to manifest" in done.stderr.decode()
        assert not (tmp_path / "root").exists()

        cosign("sign", "--recursive", *flags, remote, cwd=tmp_path)  # the index and each platform's manifest
        done = run_cli("guest", "unpack", *args, str(tmp_path / "root"))
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "root/etc/motd").read_text() == "encrypted by imgcrypt\n"
