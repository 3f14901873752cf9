"""Docker image references (`docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`) and the platform an index is resolved for.

The grammar is distribution/reference's (reference.go), with its normalisation (normalize.go): a first path
component is a registry host only when it holds a '.' or a ':' or is `localhost`; otherwise the image lives on
Docker Hub, `docker.io`, whose one-component names are in the `library/` namespace. Repository components are
lowercase. A reference names a tag or a digest, never both (containers/image's docker transport refuses both);
with neither, the tag is `latest`.

    >>> ref = DockerReference.parse("127.0.0.1:5000/team/app:v1")
    >>> (ref.host, ref.repository, ref.tag, ref.name)
    ('127.0.0.1:5000', 'team/app', 'v1', '127.0.0.1:5000/team/app')
    >>> str(DockerReference.parse("busybox"))
    'docker.io/library/busybox:latest'
"""

from __future__ import annotations

import platform as _platform
import re
from dataclasses import dataclass

from guest._errors import ImageRefError

__all__ = ["DOCKER_HUB", "DockerReference", "Platform"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"  # where docker.io's distribution API is served
DEFAULT_TAG = "latest"
_MAX_NAME = 255  # reference.go NameTotalLengthMax
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")


@dataclass(frozen=True)
class DockerReference:
    """A normalised reference: `host` (with port), `repository` (path below the host), `tag` or `digest`."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_tag: bool = True) -> DockerReference:
        """Parse `HOST[:PORT]/REPO[:TAG]`, `...@sha256:HEX`, or a short Docker Hub name (`busybox:1`); a name with
        neither tag nor digest gets the tag `latest` unless `default_tag` is false (a signature's identity)."""
        rest, at, digest = text.partition("@")
        if at and not _DIGEST_RE.fullmatch(digest):
            raise ImageRefError(f"image reference {text!r}: digest {digest!r} is not sha256:<64 hex>")
        name, tag = rest, None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:  # a ':' after the last '/' starts the tag (before it, it was a host's port)
            name, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise ImageRefError(f"image reference {text!r}: tag {tag!r} is not a valid tag")
        if at and tag is not None:
            raise ImageRefError(f"image reference {text!r}: names both a tag and a digest; give one")
        first, sep, remainder = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            host, path = first, remainder
            if not _HOST_RE.fullmatch(host):
                raise ImageRefError(f"image reference {text!r}: {host!r} is not a registry host[:port]")
        else:
            host, path = DOCKER_HUB, name
        if host == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not path or not all(_COMPONENT_RE.fullmatch(c) for c in path.split("/")):
            raise ImageRefError(
                f"image reference {text!r}: repository {path!r} must be lowercase components "
                "[a-z0-9] joined by '.', '_', '__' or '-', separated by '/'"
            )
        if len(host) + 1 + len(path) > _MAX_NAME:
            raise ImageRefError(f"image reference {text!r}: name longer than {_MAX_NAME} characters")
        if not at and tag is None and default_tag:
            tag = DEFAULT_TAG
        return cls(host, path, tag, digest or None)

    @property
    def name(self) -> str:
        """The repository's full name, `host/repository` (no tag, no digest)."""
        return f"{self.host}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host[:port] that serves this reference's distribution API."""
        return DOCKER_HUB_API_HOST if self.host == DOCKER_HUB else self.host

    def with_digest(self, digest: str) -> DockerReference:
        return DockerReference(self.host, self.repository, None, digest)

    def __str__(self) -> str:
        return self.name + (f"@{self.digest}" if self.digest else f":{self.tag}" if self.tag else "")


# Go's GOARCH names for Python's platform.machine() values (image-spec config.md uses GOARCH).
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "s390x": "s390x",
           "ppc64le": "ppc64le", "riscv64": "riscv64", "i686": "386", "i386": "386"}  # fmt: skip


@dataclass(frozen=True)
class Platform:
    """`OS/ARCH[/VARIANT]` as image-spec image-index.md's `platform` object names it."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z0-9_]+", p) for p in parts):
            raise ImageRefError(f"platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        """`linux/<this machine's architecture>`."""
        machine = _platform.machine().lower()
        return cls("linux", _GOARCH.get(machine, machine))

    def matches(self, doc: object) -> bool:
        """Whether an index entry's `platform` object is this platform (a variant is compared when both name one)."""
        if not isinstance(doc, dict):
            return False
        if doc.get("os") != self.os or doc.get("architecture") != self.architecture:
            return False
        variant = doc.get("variant")
        return self.variant is None or variant is None or variant == self.variant

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")
