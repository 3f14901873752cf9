"""The guest's two operations on an image layout: decrypt it into a plain layout, or unpack it into a rootfs.

Both build their result in a private temporary directory next to the destination and rename it into place only
when every layer decrypted, every HMAC and digest matched and every diff_id checked out; on any failure the
temporary directory is removed, so nothing is ever left at the destination.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from guest._errors import DecryptionError, GuestError, LayoutError
from guest._keys import Keyring
from guest._layout import REF_NAME_ANNOTATION, Descriptor, ImageRef, LayoutSource, LayoutWriter, OciLayout
from guest._manifests import ImageSource, diff_ids_of
from guest._ocicrypt import ENC_ANNOTATION_PREFIX, PUBOPTS_ANNOTATION, PrivateOptions, PublicOptions, decrypt_layer
from guest._pipeline import GZIP_ERROR, ChunkQueue, Consumer, TarDigest, fan_out
from guest._streams import CHUNK, Compression, HashingReader, LayerType, Readable, decompressed, drain

if TYPE_CHECKING:
    from guest._unpack import RootfsBuilder

__all__ = ["DecryptedImage", "decrypt_image", "unpack_image"]


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


def _source_of(source: ImageRef | ImageSource) -> ImageSource:
    return LayoutSource(OciLayout(source.directory), source.tag) if isinstance(source, ImageRef) else source


def _copy_verified(image: ImageSource, desc: Descriptor, target: Path, what: str) -> None:
    algorithm = desc.digest.partition(":")[0]
    src = image.open_blob(desc)
    try:
        with target.open("xb") as out:
            reader = HashingReader(src, algorithm)
            while chunk := reader.read(CHUNK):
                out.write(chunk)
    finally:
        src.close()
    if reader.digest() != desc.digest:
        target.unlink()
        raise LayoutError(f"{what}: blob digest is {reader.digest()}, descriptor says {desc.digest}")


def _keys_for(desc: Descriptor, keyring: Keyring) -> tuple[PrivateOptions, PublicOptions]:
    if PUBOPTS_ANNOTATION not in desc.annotations:
        raise DecryptionError(f"layer {desc.digest}: encrypted media type but no {PUBOPTS_ANNOTATION} annotation")
    public = PublicOptions.from_annotation(desc.annotations[PUBOPTS_ANNOTATION])
    return keyring.private_options(desc.digest, desc.annotations), public


def _write_all(out: BinaryIO, view: memoryview) -> None:
    while view:
        view = view[out.write(view) or 0 :]


def _plain_layer(
    image: ImageSource, desc: Descriptor, keyring: Keyring, kind: LayerType, scratch: Path, diff_id: str
) -> str:
    """Write layer `desc`'s plain blob to the new private file `scratch` in one streamed pass; returns its digest.

    On the way: the plain blob's digest (the new descriptor's), the write, and the decompressed tar's digest, each
    on its own thread (guest._pipeline). An encrypted layer is decrypted on the fly and must pass its HMAC
    (decrypt_layer); a plain one must match its descriptor's digest. Then the tar's digest must equal the
    config's diff_id. Any failure raises before the caller adopts `scratch` (its staging directory is removed).
    """
    algorithm = "sha256" if kind.encrypted else desc.digest.partition(":")[0]
    blob_hash = hashlib.new(algorithm)
    tar = TarDigest(kind.compression, diff_id.partition(":")[0], desc.digest)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb", buffering=0) as out:  # noqa: PTH123 (an fd from os.open)
        consumers: list[Consumer] = [blob_hash.update, functools.partial(_write_all, out)]
        if kind.compression is not Compression.NONE:
            consumers.append(tar)  # uncompressed: the blob digest is the diff_id, no second hash
        private_public = _keys_for(desc, keyring) if kind.encrypted else None
        src = image.open_blob(desc)
        try:
            if private_public is not None:
                decrypt_layer(src, *private_public, consumers, desc.digest)
            else:
                fan_out(lambda buf: src.readinto(buf[:CHUNK]) or 0, consumers)
        finally:
            src.close()
    digest = f"{algorithm}:{blob_hash.hexdigest()}"
    if not kind.encrypted and digest != desc.digest:
        raise LayoutError(f"layer {desc.digest}: blob digest is {digest}, descriptor says {desc.digest}")
    found = digest if kind.compression is Compression.NONE else tar.finish()
    if found != diff_id:
        raise LayoutError(f"layer {desc.digest}: uncompressed digest is {found}, config diff_id says {diff_id}")
    return digest


def decrypt_image(source: ImageRef | ImageSource, destination: ImageRef, keyring: Keyring) -> DecryptedImage:
    """Write a plain copy of `source` at `destination`: decrypted layers under their plain media types."""
    image = _source_of(source)
    manifest = image.resolve()
    diff_ids = diff_ids_of(image.read_json_blob(manifest.config, "config"), manifest)
    with _staging(destination.directory) as staging:
        writer = LayoutWriter(staging / "layout")
        config_scratch = writer.scratch("config")
        _copy_verified(image, manifest.config, config_scratch, "config")
        writer.adopt(config_scratch, manifest.config.digest)
        layers: list[Descriptor] = []
        decrypted = 0
        for index, desc in enumerate(manifest.layers):
            kind = LayerType.of(desc.media_type)
            scratch = writer.scratch(f"layer-{index}")
            digest = _plain_layer(image, desc, keyring, kind, scratch, diff_ids[index])
            decrypted += kind.encrypted
            size = scratch.stat().st_size
            writer.adopt(scratch, digest)
            annotations = {k: v for k, v in desc.annotations.items() if not k.startswith(ENC_ANNOTATION_PREFIX)}
            layers.append(Descriptor(kind.plain_media_type, digest, size, annotations, desc.extra))
        doc = dict(manifest.raw)
        doc["layers"] = [d.to_json() for d in layers]
        manifest_digest, manifest_size = writer.put_json(doc)
        annotations = dict(manifest.descriptor.annotations)
        annotations.pop(REF_NAME_ANNOTATION, None)
        tag = destination.tag or image.tag
        if tag:
            annotations[REF_NAME_ANNOTATION] = tag
        new = Descriptor(manifest.descriptor.media_type, manifest_digest, manifest_size, annotations,
                         manifest.descriptor.extra)  # fmt: skip
        writer.write_index([new])
        _publish(staging / "layout", destination.directory)
    return DecryptedImage(new, tuple(layers), decrypted)


def unpack_image(source: ImageRef | ImageSource, rootfs: Path, keyring: Keyring) -> int:
    """Unpack `source` into the new directory `rootfs`; returns the number of layers applied."""
    from guest._unpack import RootfsBuilder  # noqa: PLC0415 (tarfile: not for decrypt-image's start-up)

    image = _source_of(source)
    manifest = image.resolve()
    diff_ids = diff_ids_of(image.read_json_blob(manifest.config, "config"), manifest)
    with _staging(rootfs) as staging:
        root = staging / "rootfs"
        root.mkdir(mode=0o755)
        builder = RootfsBuilder(root)
        for index, desc in enumerate(manifest.layers):
            kind = LayerType.of(desc.media_type)
            if kind.encrypted:
                _unpack_encrypted(image, desc, keyring, kind, builder, diff_ids[index])
            else:
                raw = image.open_blob(desc)
                try:
                    _extract_verified(builder, raw, kind.compression, digest=desc.digest, diff_id=diff_ids[index],
                                      layer=desc.digest)  # fmt: skip
                finally:
                    raw.close()
        builder.finish()
        _publish(root, rootfs)
    return len(manifest.layers)


def _unpack_encrypted(
    image: ImageSource, desc: Descriptor, keyring: Keyring, kind: LayerType, builder: RootfsBuilder, diff_id: str
) -> None:
    """Decrypt, decompress and extract an encrypted layer in one pass, with no plaintext file.

    The decryption (read + HMAC + AES-CTR) runs on a worker thread and hands plaintext chunks over a bounded
    ChunkQueue to the extraction on this thread. The tar stream is extracted before the HMAC is known, but only
    into the private staging rootfs, which is discarded unless the HMAC *and* the diff_id match; the extraction
    rules (guest._unpack) hold for any stream, authenticated or not, exactly as for a plain layer whose diff_id
    is only known at its end. When extraction fails, the rest of the layer is still decrypted so that a failed
    HMAC (tampering, wrong key) is reported rather than its symptom (a corrupt tar or gzip stream).
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (with logging: ~5 ms of start-up)

    private, public = _keys_for(desc, keyring)
    chunks = ChunkQueue()

    def produce() -> None:
        src = image.open_blob(desc)
        try:
            decrypt_layer(src, private, public, [chunks.put], desc.digest)
        finally:
            src.close()
            chunks.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decrypt") as pool:
        decrypted = pool.submit(produce)
        try:
            _extract_verified(builder, chunks, kind.compression, digest=None, diff_id=diff_id, layer=desc.digest)
        except GuestError:
            chunks.drain()
            decrypted.result()  # a failed HMAC is the stronger verdict
            raise
        finally:
            chunks.drain()
        decrypted.result()


def _extract_verified(
    builder: RootfsBuilder, raw: Readable, compression: Compression, *, digest: str | None, diff_id: str, layer: str
) -> None:
    """Extract one layer, hashing the blob (unless `digest` is None: a decrypted layer, authenticated by its HMAC)
    and its uncompressed stream on the way; a mismatch fails the unpack (whose staging directory is then
    discarded, so nothing of an unverified layer survives)."""
    import zstandard  # noqa: PLC0415 (imported where used: decrypt-image's start-up does without it)

    # What a corrupt or truncated compressed stream raises from zlib-ng (GunzipReader) / zstandard while reading.
    decompression_errors = (GZIP_ERROR, EOFError, zlib.error, zstandard.ZstdError)
    compressed = HashingReader(raw, digest.partition(":")[0]) if digest is not None else raw
    # The diff_id is hashed on a thread of its own, beside the inflating and the file writes on this one.
    tar = HashingReader(decompressed(compressed, compression), diff_id.partition(":")[0], background=True)
    try:
        builder.apply_layer(tar, layer)
        drain(tar)
        drain(compressed)
    except decompression_errors as exc:
        raise LayoutError(f"layer {layer}: corrupt {compression} stream ({exc})") from None
    finally:
        tar.close()
    if isinstance(compressed, HashingReader) and compressed.digest() != digest:
        raise LayoutError(f"layer {layer}: blob digest is {compressed.digest()}, expected {digest}")
    if tar.digest() != diff_id:
        raise LayoutError(f"layer {layer}: uncompressed digest is {tar.digest()}, config diff_id says {diff_id}")
