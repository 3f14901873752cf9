"""The guest's two operations on an image layout: decrypt it into a plain layout, or unpack it into a rootfs.

Both build their result in a private temporary directory next to the destination and rename it into place only
when every layer decrypted, every HMAC and digest matched and every diff_id checked out; on any failure the
temporary directory is removed, so nothing is ever left at the destination.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import zstandard

from guest._errors import DecryptionError, GuestError, LayoutError
from guest._keys import Keyring
from guest._layout import REF_NAME_ANNOTATION, Descriptor, ImageRef, LayoutWriter, OciLayout
from guest._ocicrypt import ENC_ANNOTATION_PREFIX, PUBOPTS_ANNOTATION, PublicOptions, decrypt_layer
from guest._streams import CHUNK, Compression, HashingReader, LayerType, decompressed, drain
from guest._unpack import RootfsBuilder

__all__ = ["DecryptedImage", "decrypt_image", "unpack_image"]

# What a corrupt compressed stream raises from gzip / zlib / zstandard while reading.
_DECOMPRESSION_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, zstandard.ZstdError)


@dataclass(frozen=True)
class DecryptedImage:
    """What decrypt_image wrote: the new manifest's descriptor and its layers."""

    manifest: Descriptor
    layers: tuple[Descriptor, ...]
    decrypted: int  # how many layers were encrypted


def _check_destination(path: Path) -> None:
    if path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
        raise GuestError(f"destination {path} exists and is not an empty directory")


def _rmtree(path: Path) -> None:
    """Remove a staging tree, including directories that a layer made read-only."""
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            child = Path(dirpath) / name
            if not child.is_symlink():
                child.chmod(stat.S_IRWXU)
    shutil.rmtree(path)


@contextmanager
def _staging(destination: Path) -> Iterator[Path]:
    """A private directory beside `destination`, removed at the end."""
    _check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.partial-"))
    try:
        yield staging
    finally:
        _rmtree(staging)


def _publish(built: Path, destination: Path) -> None:
    _check_destination(destination)
    if destination.is_dir():
        destination.rmdir()  # empty (checked): rename cannot replace a directory otherwise
    built.rename(destination)


def _check_diff_id(blob: Path, compression: Compression, expected: str, layer: str) -> None:
    """Stream the uncompressed layer and compare its digest to the config's rootfs.diff_ids entry."""
    algorithm = expected.partition(":")[0]
    try:
        with blob.open("rb") as raw:
            tar = HashingReader(decompressed(raw, compression), algorithm)
            drain(tar)
    except _DECOMPRESSION_ERRORS as exc:
        raise LayoutError(f"layer {layer}: corrupt {compression} stream ({exc})") from None
    if tar.digest() != expected:
        raise LayoutError(f"layer {layer}: uncompressed digest is {tar.digest()}, config diff_id says {expected}")


def _copy_verified(source: Path, target: Path, expected: str, what: str) -> None:
    algorithm = expected.partition(":")[0]
    with source.open("rb") as src, target.open("xb") as out:
        reader = HashingReader(src, algorithm)
        while chunk := reader.read(CHUNK):
            out.write(chunk)
    if reader.digest() != expected:
        target.unlink()
        raise LayoutError(f"{what}: blob digest is {reader.digest()}, descriptor says {expected}")


def _decrypt_to(layout: OciLayout, desc: Descriptor, keyring: Keyring, scratch: Path) -> str:
    """Decrypt encrypted layer `desc` into `scratch` (verified); returns the plain blob's digest."""
    if PUBOPTS_ANNOTATION not in desc.annotations:
        raise DecryptionError(f"layer {desc.digest}: encrypted media type but no {PUBOPTS_ANNOTATION} annotation")
    public = PublicOptions.from_annotation(desc.annotations[PUBOPTS_ANNOTATION])
    private = keyring.private_options(desc.digest, desc.annotations)
    return decrypt_layer(layout.blob_path(desc), scratch, private, public, desc.digest)


def decrypt_image(source: ImageRef, destination: ImageRef, keyring: Keyring) -> DecryptedImage:
    """Write a plain copy of `source` at `destination`: decrypted layers under their plain media types."""
    layout = OciLayout(source.directory)
    manifest = layout.resolve(source.tag)
    diff_ids = layout.diff_ids(manifest)
    with _staging(destination.directory) as staging:
        writer = LayoutWriter(staging / "layout")
        config_scratch = writer.scratch("config")
        _copy_verified(layout.blob_path(manifest.config), config_scratch, manifest.config.digest, "config")
        writer.adopt(config_scratch, manifest.config.digest)
        layers: list[Descriptor] = []
        decrypted = 0
        for index, desc in enumerate(manifest.layers):
            kind = LayerType.of(desc.media_type)
            scratch = writer.scratch(f"layer-{index}")
            if kind.encrypted:
                digest = _decrypt_to(layout, desc, keyring, scratch)
                decrypted += 1
            else:
                digest = desc.digest
                _copy_verified(layout.blob_path(desc), scratch, digest, f"layer {desc.digest}")
            if kind.compression is Compression.NONE:
                if digest != diff_ids[index]:
                    raise LayoutError(f"layer {desc.digest}: digest is {digest}, config diff_id says {diff_ids[index]}")
            else:
                _check_diff_id(scratch, kind.compression, diff_ids[index], desc.digest)
            size = scratch.stat().st_size
            writer.adopt(scratch, digest)
            annotations = {k: v for k, v in desc.annotations.items() if not k.startswith(ENC_ANNOTATION_PREFIX)}
            layers.append(Descriptor(kind.plain_media_type, digest, size, annotations, desc.extra))
        doc = dict(manifest.raw)
        doc["layers"] = [d.to_json() for d in layers]
        manifest_digest, manifest_size = writer.put_json(doc)
        annotations = dict(manifest.descriptor.annotations)
        annotations.pop(REF_NAME_ANNOTATION, None)
        tag = destination.tag or source.tag
        if tag:
            annotations[REF_NAME_ANNOTATION] = tag
        new = Descriptor(manifest.descriptor.media_type, manifest_digest, manifest_size, annotations,
                         manifest.descriptor.extra)  # fmt: skip
        writer.write_index([new])
        _publish(staging / "layout", destination.directory)
    return DecryptedImage(new, tuple(layers), decrypted)


def unpack_image(source: ImageRef, rootfs: Path, keyring: Keyring) -> int:
    """Unpack `source` into the new directory `rootfs`; returns the number of layers applied."""
    layout = OciLayout(source.directory)
    manifest = layout.resolve(source.tag)
    diff_ids = layout.diff_ids(manifest)
    with _staging(rootfs) as staging:
        root = staging / "rootfs"
        root.mkdir(mode=0o755)
        builder = RootfsBuilder(root)
        for index, desc in enumerate(manifest.layers):
            kind = LayerType.of(desc.media_type)
            if kind.encrypted:
                blob = staging / f"layer-{index}"
                digest = _decrypt_to(layout, desc, keyring, blob)
            else:
                blob, digest = layout.blob_path(desc), desc.digest
            _extract_verified(
                builder, blob, kind.compression, digest=digest, diff_id=diff_ids[index], layer=desc.digest
            )
            if kind.encrypted:
                blob.unlink()
        builder.finish()
        _publish(root, rootfs)
    return len(manifest.layers)


def _extract_verified(
    builder: RootfsBuilder, blob: Path, compression: Compression, *, digest: str, diff_id: str, layer: str
) -> None:
    """Extract one layer, hashing the blob and its uncompressed stream on the way; a mismatch fails the unpack
    (whose staging directory is then discarded, so nothing of an unverified layer survives)."""
    try:
        with blob.open("rb") as raw:
            compressed = HashingReader(raw, digest.partition(":")[0])
            stream = decompressed(compressed, compression)
            tar = HashingReader(stream, diff_id.partition(":")[0])
            builder.apply_layer(tar, layer)
            drain(tar)
            drain(compressed)
    except _DECOMPRESSION_ERRORS as exc:
        raise LayoutError(f"layer {layer}: corrupt {compression} stream ({exc})") from None
    if compressed.digest() != digest:
        raise LayoutError(f"layer {layer}: blob digest is {compressed.digest()}, expected {digest}")
    if tar.digest() != diff_id:
        raise LayoutError(f"layer {layer}: uncompressed digest is {tar.digest()}, config diff_id says {diff_id}")
