"""Build small OCI image layouts (plain, and encrypted the ocicrypt way) and hostile layer tars for guest tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import zstandard

LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}

Entry = tuple[tarfile.TarInfo, bytes | None]


def file_(name: str, data: bytes = b"", mode: int = 0o644) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    return info, data


def dir_(name: str, mode: int = 0o755) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info, None


def link_(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def device_(name: str, kind: bytes = tarfile.CHRTYPE) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3
    return info, None


def tar_bytes(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put(directory: Path, data: bytes) -> str:
    digest = _digest(data)
    (directory / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return digest


def compress(tar: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(tar)
    return tar


def write_image(directory: Path, layers: list[bytes], *, compression: str = "gzip", tag: str | None = "v1") -> None:
    """An OCI layout at `directory` with one manifest whose layers are the given uncompressed tars."""
    (directory / "blobs" / "sha256").mkdir(parents=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors = []
    for tar in layers:
        blob = compress(tar, compression)
        descriptors.append({"mediaType": LAYER_TYPES[compression], "digest": _put(directory, blob), "size": len(blob)})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_digest(t) for t in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _put(directory, config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    entry: dict[str, object] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _put(directory, manifest),
        "size": len(manifest),
    }
    if tag:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def manifest_of(directory: Path) -> dict[str, Any]:
    index = json.loads((directory / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    return json.loads((directory / "blobs" / "sha256" / digest).read_text())  # type: ignore[no-any-return]


def layer_blob(directory: Path, index: int = 0) -> Path:
    layers = manifest_of(directory)["layers"]
    assert isinstance(layers, list)
    digest: str = layers[index]["digest"]
    return directory / "blobs" / "sha256" / digest.split(":")[1]


def rewrite_layer(
    directory: Path, index: int, blob: bytes | None = None, annotations: dict[str, str] | None = None
) -> None:
    """Replace layer `index`'s blob and/or annotations, re-digesting the manifest and index (as an attacker with
    write access to the layout would), so that only the encryption's own checks can catch the change."""
    manifest = manifest_of(directory)
    layers = manifest["layers"]
    assert isinstance(layers, list)
    if blob is not None:
        layers[index]["digest"], layers[index]["size"] = _put(directory, blob), len(blob)
    if annotations is not None:
        layers[index]["annotations"] = {**layers[index].get("annotations", {}), **annotations}
    data = json.dumps(manifest).encode()
    index_doc = json.loads((directory / "index.json").read_text())
    index_doc["manifests"][0]["digest"], index_doc["manifests"][0]["size"] = _put(directory, data), len(data)
    (directory / "index.json").write_text(json.dumps(index_doc))


def swap_layer(layout: Path, layer: Path) -> None:
    """Make the file `layer` (moved into the blobs) the only layer of the one-manifest layout `layout` (for
    layers too large to build in memory), re-digesting config, manifest and index."""
    with layer.open("rb") as f:
        digest = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    size = layer.stat().st_size
    shutil.move(layer, layout / "blobs" / "sha256" / digest.split(":")[1])
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    config_path = layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(config_path.read_text())
    config["rootfs"]["diff_ids"] = [digest]
    config_bytes = json.dumps(config).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    (layout / "blobs" / "sha256" / config_digest).write_bytes(config_bytes)
    manifest["config"].update(digest=f"sha256:{config_digest}", size=len(config_bytes))
    manifest["layers"][0].update(digest=digest, size=size)
    manifest_bytes = json.dumps(manifest).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (layout / "blobs" / "sha256" / manifest_digest).write_bytes(manifest_bytes)
    index["manifests"][0].update(digest=f"sha256:{manifest_digest}", size=len(manifest_bytes))
    (layout / "index.json").write_text(json.dumps(index))
