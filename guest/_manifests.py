"""From an image's first document to the manifest to run, the same way for a layout and a registry.

An image reference names a manifest or an image index (image-spec image-index.md; Docker's manifest list is the
same thing). An index is followed to the entry for the wanted platform, and indexes may nest (containerd's
`ctr export` writes index.json -> index -> per-platform manifests). Following stops after MAX_INDEX_DEPTH
indexes, and a digest met twice is refused as a cycle; every document is read through the caller's `load`,
which checks its size cap and digest.

`ImageSource` is what guest._image needs of an image wherever it lives: the chosen manifest, the config's
diff_ids, and each layer blob as a stream (a file, or an HTTP body checked against its digest as it is read).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from guest._errors import LayoutError
from guest._reference import Platform

__all__ = [
    "DIGEST_RE",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "MAX_INDEX_DEPTH",
    "MAX_JSON_BYTES",
    "BlobStream",
    "Descriptor",
    "ImageSource",
    "Manifest",
    "diff_ids_of",
    "digest_of",
    "load_json_object",
    "parse_manifest",
    "select_manifest",
]

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",  # skopeo keeps Docker schema 2 when copying as-is
)
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_INDEX_DEPTH = 4  # indexes followed before the manifest; real images nest one or two
# Cap on the JSON documents read whole (index, manifest, config), as containers/image's 4 MiB manifest limit;
# layers are only ever streamed.
MAX_JSON_BYTES = 4 * 1024 * 1024
# descriptor.md "Digests": algorithm ":" encoded; registered algorithms only, lowercase hex of exact length.
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (descriptor.md); `extra` keeps fields this code does not interpret."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: object, what: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise LayoutError(f"{what}: descriptor is {type(doc).__name__}, expected a JSON object")
        media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise LayoutError(f"{what}: mediaType is {media_type!r}, expected a media type string")
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise LayoutError(f"{what}: digest is {digest!r}, expected sha256:<64 hex> or sha512:<128 hex>")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise LayoutError(f"{what}: size is {size!r}, expected a non-negative integer")
        annotations = doc.get("annotations", {})
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise LayoutError(f"{what}: annotations must map strings to strings")
        extra = {k: v for k, v in doc.items() if k not in {"mediaType", "digest", "size", "annotations"}}
        return cls(media_type, digest, size, dict(annotations), extra)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        doc.update(self.extra)
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc


@dataclass(frozen=True)
class Manifest:
    """An image manifest (manifest.md) with its own descriptor and the raw document for faithful rewriting."""

    descriptor: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: Mapping[str, Any]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: too deeply nested
        raise LayoutError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{what}: is a JSON {type(doc).__name__}, expected an object")
    return doc


class BlobStream(Protocol):
    """A blob read sequentially; `readinto` returns 0 at its end (after any digest check passed)."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class ImageSource(Protocol):
    """An image to decrypt or unpack: a local layout or a registry repository."""

    @property
    def tag(self) -> str | None:
        """The tag the image was named by (a decrypted copy keeps it), if any."""
        ...

    def resolve(self) -> Manifest:
        """The manifest to use (the platform's, through any indexes), structurally checked."""
        ...

    def read_json_blob(self, desc: Descriptor, what: str) -> dict[str, Any]:
        """A small JSON blob (config), size-capped and checked against `desc`'s digest."""
        ...

    def open_blob(self, desc: Descriptor) -> BlobStream:
        """A layer blob as a stream of at most `desc.size` bytes."""
        ...


@dataclass(frozen=True)
class _Entry:
    descriptor: Descriptor
    platform: object


def _entries(doc: dict[str, Any], what: str) -> list[_Entry]:
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise LayoutError(f"{what}: manifests is missing or not a list")
    entries = []
    for i, item in enumerate(manifests):
        desc = Descriptor.parse(item, f"{what} manifests[{i}]")
        entries.append(_Entry(desc, desc.extra.get("platform")))
    return entries


def _pick(doc: dict[str, Any], platform: Platform, what: str) -> Descriptor:
    """The index entry for `platform`; an index of one entry without a platform (containerd's export) is that
    entry. Entries for other platforms and attestation manifests (`unknown/unknown`) are never chosen."""
    entries = _entries(doc, what)
    matching = [e.descriptor for e in entries if platform.matches(e.platform)]
    if matching:
        return matching[0]
    if len(entries) == 1 and entries[0].platform is None:
        return entries[0].descriptor
    offered = sorted({f"{p.get('os')}/{p.get('architecture')}" for e in entries if isinstance(p := e.platform, dict)})
    raise LayoutError(f"{what}: no manifest for platform {platform} (the index offers {offered or 'none'})")


def select_manifest(
    first: Descriptor, load: Callable[[Descriptor, str], dict[str, Any]], platform: Platform
) -> tuple[Descriptor, dict[str, Any]]:
    """Follow `first` through image indexes to a manifest for `platform`; returns its descriptor and document."""
    seen: set[str] = set()
    desc = first
    for _ in range(MAX_INDEX_DEPTH + 1):
        if desc.digest in seen:
            raise LayoutError(f"image index cycle: {desc.digest} is reached twice")
        seen.add(desc.digest)
        if desc.media_type in MANIFEST_MEDIA_TYPES:
            return desc, load(desc, "manifest")
        if desc.media_type not in INDEX_MEDIA_TYPES:
            raise LayoutError(
                f"{desc.digest}: mediaType is {desc.media_type!r}, expected an image manifest or index "
                f"({[*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES]})"
            )
        what = f"image index {desc.digest}"
        doc = load(desc, "image index")
        if doc.get("schemaVersion") != 2:
            raise LayoutError(f"{what}: schemaVersion is {doc.get('schemaVersion')!r}, expected 2")
        desc = _pick(doc, platform, what)
    raise LayoutError(f"image indexes nested deeper than {MAX_INDEX_DEPTH}: refusing to follow {desc.digest}")


def parse_manifest(desc: Descriptor, doc: dict[str, Any]) -> Manifest:
    """Check an image manifest's structure (manifest.md): schemaVersion 2, a config and a list of layers."""
    if doc.get("schemaVersion") != 2:
        raise LayoutError(f"manifest {desc.digest}: schemaVersion is {doc.get('schemaVersion')!r}, expected 2")
    declared = doc.get("mediaType")
    if declared is not None and declared != desc.media_type:
        raise LayoutError(f"manifest {desc.digest}: mediaType is {declared!r}, its descriptor says {desc.media_type!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise LayoutError(f"manifest {desc.digest}: layers is missing or not a list")
    return Manifest(
        descriptor=desc,
        config=Descriptor.parse(doc.get("config"), f"manifest {desc.digest} config"),
        layers=tuple(Descriptor.parse(d, f"manifest {desc.digest} layers[{i}]") for i, d in enumerate(layers)),
        raw=doc,
    )


def diff_ids_of(config: dict[str, Any], manifest: Manifest) -> tuple[str, ...]:
    """The config's rootfs.diff_ids (config.md), one per layer."""
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and DIGEST_RE.fullmatch(d) for d in diff_ids):
        raise LayoutError(f"config {manifest.config.digest}: rootfs.diff_ids is missing or malformed")
    if len(diff_ids) != len(manifest.layers):
        raise LayoutError(
            f"config {manifest.config.digest}: {len(diff_ids)} rootfs.diff_ids for {len(manifest.layers)} layers"
        )
    return tuple(diff_ids)
