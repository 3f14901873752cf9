"""`guest decrypt-image` / `guest unpack` on images encrypted the ocicrypt way (JWE recipients, local key files).

Key-provider layers and KBS-held keys are covered end to end in test_interop.py with a real broker and skopeo.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from guest._encrypt import encrypt_image, jwe_recipient
from tests.conftest import cli_env, run_cli
from tests.guest._images import file_, layer_blob, manifest_of, rewrite_layer, tar_bytes, write_image

from .conftest import BASE_LAYER, UPPER_LAYER


def _encrypted(tmp_path: Path, pub: Path, compression: str = "gzip", layers: list[bytes] | None = None) -> Path:
    plain, enc = tmp_path / "plain", tmp_path / "enc"
    write_image(plain, layers or [BASE_LAYER, UPPER_LAYER], compression=compression)
    encrypt_image(plain, enc, jwe_recipient(pub.read_bytes()), tag="v1")
    return enc


def _nothing_left(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.partial-")] == []


def _check_rootfs(root: Path) -> None:
    assert (root / "etc/motd").read_text() == "hello from an encrypted layer\n"
    assert not (root / "etc/removed").exists()  # whiteout
    assert sorted(p.name for p in (root / "opt/app").iterdir()) == ["new"]  # opaque whiteout kept this layer's file
    assert (root / "usr/bin/added").read_bytes() == b"through the bin symlink"  # followed inside the root
    assert stat.S_IMODE((root / "usr/bin/tool").stat().st_mode) == 0o4755  # modes kept, setuid included
    assert stat.S_IMODE((root / "opt/ro").stat().st_mode) == 0o555
    assert str((root / "etc/localtime").readlink()) == "/usr/share/zoneinfo/UTC"
    assert (root / "etc/motd.link").stat().st_ino == (root / "etc/motd").stat().st_ino


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_unpack_round_trip(tmp_path: Path, keys: dict[str, tuple[Path, Path]], kind: str, compression: str) -> None:
    private, public = keys[kind]
    enc = _encrypted(tmp_path, public, compression)
    done = run_cli("guest", "unpack", "--json", "--key", f"file:{private}", f"oci:{enc}:v1", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {"rootfs": str(tmp_path / "root"), "layers": 2}
    _check_rootfs(tmp_path / "root")


def test_decrypt_image_writes_a_plain_layout(tmp_path: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    private, public = keys["rsa"]
    enc = _encrypted(tmp_path, public)
    done = run_cli(
        "guest", "decrypt-image", "--json", "--key", f"file:{private}", f"oci:{enc}", f"oci:{tmp_path / 'dec'}:app"
    )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["decrypted_layers"] == 2
    plain_manifest = manifest_of(tmp_path / "plain")
    dec_manifest = manifest_of(tmp_path / "dec")
    # The decrypted layers are byte-identical to the originals: same digests, plain media types, no enc annotations.
    assert dec_manifest["layers"] == plain_manifest["layers"]
    assert result["layers"] == [d["digest"] for d in plain_manifest["layers"]]
    index = json.loads((tmp_path / "dec" / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "app"}
    # ... and the plain layout unpacks without any key.
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'dec'}:app", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    _check_rootfs(tmp_path / "root")


def _flip_ciphertext(enc: Path) -> None:
    blob = bytearray(layer_blob(enc, 1).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    rewrite_layer(enc, 1, blob=bytes(blob))


def _garble_pubopts(enc: Path) -> None:
    rewrite_layer(enc, 0, annotations={"org.opencontainers.image.enc.pubopts": "not*base64"})


def _garble_keys(enc: Path) -> None:
    rewrite_layer(enc, 0, annotations={"org.opencontainers.image.enc.keys.jwe": base64.b64encode(b"{garbage").decode()})


def _wrong_hmac(enc: Path) -> None:
    pubopts = {"cipher": "AES_256_CTR_HMAC_SHA256", "hmac": base64.b64encode(bytes(32)).decode(), "cipheroptions": {}}
    value = base64.b64encode(json.dumps(pubopts).encode()).decode()
    rewrite_layer(enc, 1, annotations={"org.opencontainers.image.enc.pubopts": value})


def _unknown_cipher(enc: Path) -> None:
    pubopts = {"cipher": "AES_128_GCM", "hmac": "", "cipheroptions": {}}
    value = base64.b64encode(json.dumps(pubopts).encode()).decode()
    rewrite_layer(enc, 0, annotations={"org.opencontainers.image.enc.pubopts": value})


def _blob_swapped(enc: Path) -> None:
    blob = layer_blob(enc, 0)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))  # the descriptor still names the old digest


FAILURES = {
    # name: (mutation, expected stderr fragment)
    "ciphertext-corrupted": (_flip_ciphertext, "HMAC-SHA256 of the ciphertext does not match"),
    "hmac-annotation-wrong": (_wrong_hmac, "HMAC-SHA256 of the ciphertext does not match"),
    "pubopts-not-base64": (_garble_pubopts, "org.opencontainers.image.enc.pubopts: is not valid base64"),
    "pubopts-unknown-cipher": (_unknown_cipher, "cipher is 'AES_128_GCM', expected 'AES_256_CTR_HMAC_SHA256'"),
    "jwe-annotation-garbled": (_garble_keys, "jwe: the JWE is not JSON"),
    # The ciphertext's own SHA-256 is not recomputed (guest._ocicrypt.decrypt_layer): a blob swapped behind its
    # descriptor fails the HMAC that the same descriptor carries.
    "blob-swapped-behind-descriptor": (_blob_swapped, "HMAC-SHA256 of the ciphertext does not match"),
}


@pytest.mark.parametrize("command", ["unpack", "decrypt-image"])
@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failures_leave_nothing(tmp_path: Path, keys: dict[str, tuple[Path, Path]], case: str, command: str) -> None:
    private, public = keys["rsa"]
    enc = _encrypted(tmp_path, public)
    mutate, message = FAILURES[case]
    mutate(enc)
    target = str(tmp_path / "out") if command == "unpack" else f"oci:{tmp_path / 'out'}"
    done = run_cli("guest", command, "--key", f"file:{private}", f"oci:{enc}:v1", target)
    assert done.returncode == 1, done.stderr.decode()
    assert message in done.stderr.decode()
    _nothing_left(tmp_path, "out")


@pytest.mark.parametrize("command", ["unpack", "decrypt-image"])
def test_wrong_key_fails_cleanly(tmp_path: Path, keys: dict[str, tuple[Path, Path]], command: str) -> None:
    enc = _encrypted(tmp_path, keys["rsa"][1])
    target = str(tmp_path / "out") if command == "unpack" else f"oci:{tmp_path / 'out'}"
    done = run_cli("guest", command, "--key", f"file:{keys['other'][0]}", f"oci:{enc}:v1", target)
    assert done.returncode == 1
    assert "no key unwraps it" in done.stderr.decode()
    assert f"none of the keys ['file:{keys['other'][0]}'] unwraps it" in done.stderr.decode()
    _nothing_left(tmp_path, "out")


def test_no_key_given(tmp_path: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    enc = _encrypted(tmp_path, keys["rsa"][1])
    done = run_cli("guest", "unpack", f"oci:{enc}", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "no --key private key was given" in done.stderr.decode()


def test_diff_id_mismatch_fails(tmp_path: Path) -> None:
    write_image(tmp_path / "img", [BASE_LAYER])
    config_digest = manifest_of(tmp_path / "img")["config"]["digest"]
    # A config whose diff_id names other content: rewrite config + manifest + index consistently.
    bad = tar_bytes([file_("x", b"other")])
    write_image(tmp_path / "other", [bad])
    other_config = manifest_of(tmp_path / "other")["config"]
    (tmp_path / "img/blobs/sha256" / other_config["digest"].split(":")[1]).write_bytes(
        (tmp_path / "other/blobs/sha256" / other_config["digest"].split(":")[1]).read_bytes()
    )
    manifest = manifest_of(tmp_path / "img")
    manifest["config"] = other_config
    data = json.dumps(manifest).encode()
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "img/blobs/sha256" / digest).write_bytes(data)
    index = json.loads((tmp_path / "img/index.json").read_text())
    index["manifests"][0].update(digest=f"sha256:{digest}", size=len(data))
    (tmp_path / "img/index.json").write_text(json.dumps(index))
    assert config_digest != other_config["digest"]
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "config diff_id says" in done.stderr.decode()
    _nothing_left(tmp_path, "out")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["unpack", "docker://x", "out"], "expected oci:DIR[:TAG]"),
        (["unpack", "oci:", "out"], "expected oci:DIR[:TAG]"),
        (["unpack", "oci:dir:bad tag", "out"], "not a valid reference name"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    done = run_cli("guest", *args)
    assert done.returncode == 2
    assert message in done.stderr.decode()


def test_destination_must_be_new(tmp_path: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    enc = _encrypted(tmp_path, keys["rsa"][1])
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "keep").write_text("mine")
    done = run_cli("guest", "unpack", "--key", f"file:{keys['rsa'][0]}", f"oci:{enc}", str(tmp_path / "root"))
    assert done.returncode == 1
    assert "exists and is not an empty directory" in done.stderr.decode()
    assert (tmp_path / "root" / "keep").read_text() == "mine"


def _peak_rss_kib(*args: str) -> int:
    """Peak RSS of a `guest` run, measured in a fresh wrapper process so earlier children do not count."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "code = 'import sys; from guest.cli import main; sys.exit(main())'\n"
        "done = subprocess.run([sys.executable, '-c', code, *sys.argv[1:]], capture_output=True)\n"
        "assert done.returncode == 0, done.stderr\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, env=cli_env(), check=True)
    return int(done.stdout)


def test_memory_does_not_grow_with_the_layer(tmp_path: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    private, public = keys["ec"]
    peaks = {}
    for mib in (8, 64):
        folder = tmp_path / f"{mib}"
        folder.mkdir()
        layer = tar_bytes([file_("big", os.urandom(mib * 1024 * 1024))])
        enc = _encrypted(folder, public, "none", [layer])
        peaks[mib] = _peak_rss_kib("decrypt-image", "--key", f"file:{private}", f"oci:{enc}", f"oci:{folder / 'dec'}")
        assert (folder / "dec").is_dir()
    # 56 MiB more layer; allow 8 MiB of noise (allocator, page cache accounting), far below the layer growth.
    assert peaks[64] - peaks[8] < 8 * 1024, peaks
