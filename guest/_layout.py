"""OCI image layouts on disk: read `oci:DIR[:TAG]` (index.json, manifest, config, blobs) and write new ones.

Follows the OCI image-spec image-layout.md: `oci-layout` holds `{"imageLayoutVersion": "1.0.0"}`,
`index.json` is an image index whose descriptors name manifests (tag in the
`org.opencontainers.image.ref.name` annotation), and every blob lives at `blobs/<algorithm>/<encoded>`.
Digests are validated against a strict pattern before they become path components, so no descriptor can
point outside `blobs/`; every blob read is checked against its descriptor's size and digest.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guest._errors import ImageRefError, LayoutError
from guest._manifests import (
    DIGEST_RE,
    MAX_JSON_BYTES,
    Descriptor,
    Manifest,
    diff_ids_of,
    digest_of,
    load_json_object,
    parse_manifest,
    select_manifest,
)
from guest._reference import Platform

__all__ = [
    "REF_NAME_ANNOTATION",
    "Descriptor",
    "ImageRef",
    "LayoutSource",
    "LayoutWriter",
    "Manifest",
    "OciLayout",
]

# image-spec annotations.md: the tag of a manifest inside an image layout's index.
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"  # image-layout.md, `oci-layout` file
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
# image-spec annotations.md ref.name grammar (a tag or a fuller reference), without path separators abuse.
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:/@+-]{0,254}")


@dataclass(frozen=True)
class ImageRef:
    """`oci:DIR[:TAG]`; DIR may not contain ':' (as in skopeo's oci transport)."""

    directory: Path
    tag: str | None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        prefix, sep, rest = text.partition(":")
        if prefix != "oci" or not sep or not rest:
            raise ImageRefError(f"image reference {text!r}: expected oci:DIR[:TAG]")
        directory, _, tag = rest.partition(":")
        if not directory:
            raise ImageRefError(f"image reference {text!r}: DIR is empty")
        if tag and not _REF_RE.fullmatch(tag):
            raise ImageRefError(f"image reference {text!r}: tag {tag!r} is not a valid reference name")
        return cls(Path(directory), tag or None)

    def __str__(self) -> str:
        return f"oci:{self.directory}" + (f":{self.tag}" if self.tag else "")


class OciLayout:
    """A read-only OCI image layout directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        marker = directory / "oci-layout"
        if not directory.is_dir():
            raise LayoutError(f"{directory}: no such image layout directory")
        try:
            doc = load_json_object(self._read_small(marker, "oci-layout"), f"{marker}")
        except FileNotFoundError:
            raise LayoutError(f"{marker}: missing; {directory} is not an OCI image layout") from None
        if doc.get("imageLayoutVersion") != LAYOUT_VERSION:
            raise LayoutError(
                f"{marker}: imageLayoutVersion is {doc.get('imageLayoutVersion')!r}, expected {LAYOUT_VERSION!r}"
            )

    @staticmethod
    def _read_small(path: Path, what: str) -> bytes:
        with path.open("rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise LayoutError(f"{what}: larger than {MAX_JSON_BYTES} bytes")
        return data

    def blob_path(self, desc: Descriptor) -> Path:
        """The blob file of `desc`, checked to be a regular file of the descriptor's size (not its digest)."""
        algorithm, _, encoded = desc.digest.partition(":")  # validated by Descriptor.parse: no '/' or '..'
        path = self.directory / "blobs" / algorithm / encoded
        try:
            st = path.lstat()
        except FileNotFoundError:
            raise LayoutError(f"blob {desc.digest}: missing from {self.directory / 'blobs'}") from None
        if not path.is_file() or path.is_symlink():
            raise LayoutError(f"blob {desc.digest}: {path} is not a regular file")
        if st.st_size != desc.size:
            raise LayoutError(f"blob {desc.digest}: size is {st.st_size}, descriptor says {desc.size}")
        return path

    def read_json_blob(self, desc: Descriptor, what: str) -> dict[str, Any]:
        if desc.size > MAX_JSON_BYTES:
            raise LayoutError(f"{what} {desc.digest}: size {desc.size} exceeds the {MAX_JSON_BYTES}-byte cap")
        data = self.blob_path(desc).read_bytes()
        algorithm = desc.digest.partition(":")[0]
        if (found := digest_of(data, algorithm)) != desc.digest:
            raise LayoutError(f"{what}: blob digest is {found}, descriptor says {desc.digest}")
        return load_json_object(data, f"{what} {desc.digest}")

    def index(self) -> tuple[Descriptor, ...]:
        path = self.directory / "index.json"
        try:
            doc = load_json_object(self._read_small(path, "index.json"), "index.json")
        except FileNotFoundError:
            raise LayoutError(f"{path}: missing") from None
        if doc.get("schemaVersion") != 2:
            raise LayoutError(f"index.json: schemaVersion is {doc.get('schemaVersion')!r}, expected 2")
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise LayoutError("index.json: manifests is missing or not a list")
        return tuple(Descriptor.parse(m, f"index.json manifests[{i}]") for i, m in enumerate(manifests))

    def resolve(self, tag: str | None, platform: Platform | None = None) -> Manifest:
        """The manifest tagged `tag` (or the only entry when no tag is given), through nested indexes to the one
        for `platform` (default: this machine's linux/ARCH)."""
        entries = self.index()
        if tag is None:
            if len(entries) != 1:
                tags = sorted(e.annotations.get(REF_NAME_ANNOTATION, "<untagged>") for e in entries)
                raise LayoutError(f"index.json holds {len(entries)} manifests {tags}; name one as oci:DIR:TAG")
            chosen = entries[0]
        else:
            matches = [e for e in entries if e.annotations.get(REF_NAME_ANNOTATION) == tag]
            if len(matches) != 1:
                tags = sorted(e.annotations.get(REF_NAME_ANNOTATION, "<untagged>") for e in entries)
                raise LayoutError(f"index.json: {len(matches)} manifests tagged {tag!r}, expected 1 (tags: {tags})")
            chosen = matches[0]
        desc, doc = select_manifest(chosen, self.read_json_blob, platform or Platform.host())
        return parse_manifest(desc, doc)

    def diff_ids(self, manifest: Manifest) -> tuple[str, ...]:
        """The config's rootfs.diff_ids (config.md), one per layer."""
        return diff_ids_of(self.read_json_blob(manifest.config, "config"), manifest)


@dataclass(frozen=True)
class LayoutSource:
    """An `oci:DIR[:TAG]` image as a guest._manifests.ImageSource."""

    layout: OciLayout
    tag: str | None
    platform: Platform | None = None

    def resolve(self) -> Manifest:
        return self.layout.resolve(self.tag, self.platform)

    def read_json_blob(self, desc: Descriptor, what: str) -> dict[str, Any]:
        return self.layout.read_json_blob(desc, what)

    def open_blob(self, desc: Descriptor) -> io.FileIO:
        """The blob's file, unbuffered; its digest is checked by the reader (guest._image) as it streams."""
        return io.FileIO(self.layout.blob_path(desc), "rb")


class LayoutWriter:
    """Builds a new OCI image layout in `directory` (a temporary one, renamed into place at the end)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": LAYOUT_VERSION}))

    def blob_path(self, digest: str) -> Path:
        if not DIGEST_RE.fullmatch(digest):
            raise LayoutError(f"refusing to store blob with malformed digest {digest!r}")
        algorithm, _, encoded = digest.partition(":")
        (self.directory / "blobs" / algorithm).mkdir(parents=True, exist_ok=True)
        return self.directory / "blobs" / algorithm / encoded

    def scratch(self, name: str) -> Path:
        """A path for a file being written, in the layout's directory (same filesystem: rename is atomic)."""
        return self.directory / f".partial-{name}"

    def adopt(self, partial: Path, digest: str) -> None:
        """Move a fully verified file into place as blob `digest`."""
        partial.chmod(0o644)  # blobs are public content of the layout (scratch files start private)
        partial.replace(self.blob_path(digest))

    def put_json(self, doc: Mapping[str, Any]) -> tuple[str, int]:
        data = json.dumps(doc, separators=(",", ":")).encode()
        digest = digest_of(data)
        self.blob_path(digest).write_bytes(data)
        return digest, len(data)

    def write_index(self, manifests: Sequence[Descriptor]) -> None:
        doc = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [m.to_json() for m in manifests],
        }
        (self.directory / "index.json").write_text(json.dumps(doc, separators=(",", ":")))
