"""Pulling from an OCI registry (the OCI distribution spec, `GET /v2/<name>/manifests/<ref>` and `/blobs/<digest>`).

Every document and blob is checked against the digest that names it: a manifest fetched by tag gets its digest
from its bytes (the digest that the signature policy then checks), one fetched by digest must hash to it, and
blobs are hashed as they stream and fail at their end on a size or digest mismatch (nothing downstream is
published before that: guest._image builds in a staging directory). Documents read whole are capped
(guest._manifests.MAX_JSON_BYTES) before they are read. Redirects are followed only to the same scheme, host and
port (a registry that sends us elsewhere is refused), at most MAX_REDIRECTS times. HTTPS is required unless the
host:port was named by --insecure-registry. Authentication is guest._registry_auth's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from guest._errors import LayoutError, RegistryError
from guest._manifests import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MAX_JSON_BYTES,
    Descriptor,
    Manifest,
    digest_of,
    load_json_object,
    parse_manifest,
    select_manifest,
)
from guest._reference import DockerReference, Platform
from guest._registry_auth import Credentials, RegistryAuth

__all__ = ["NotFoundError", "Registry", "RegistrySource"]

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
ACCEPT = ", ".join((*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES))
_REDIRECTS = (301, 302, 303, 307, 308)


class NotFoundError(RegistryError):
    """The registry has no such manifest or blob (HTTP 404)."""


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class Registry:
    """One repository of one registry, over one HTTP client (connections and the auth token are reused)."""

    def __init__(
        self,
        ref: DockerReference,
        *,
        credentials: Credentials | None = None,
        insecure_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.ref = ref
        host = ref.api_host
        scheme = "http" if host in insecure_hosts else "https"
        self.base = httpx.URL(f"{scheme}://{host}/v2/{ref.repository}/")
        auth = RegistryAuth(ref.repository, credentials, insecure_hosts)
        self._client = httpx.Client(auth=auth, timeout=TIMEOUT, follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, what: str, accept: str | None = None) -> httpx.Response:
        """GET below the repository's base, following same-origin redirects; a 200 response, still streaming."""
        url = self.base.join(path)
        headers = {"Accept": accept} if accept else {}
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
            except httpx.HTTPError as exc:
                raise RegistryError(f"{what}: cannot reach {url.host}:{url.port or ''} ({exc})") from None
            if response.status_code not in _REDIRECTS:
                break
            response.close()
            location = response.headers.get("Location", "")
            target = url.join(location)
            if _origin(target) != _origin(url):
                raise RegistryError(
                    f"{what}: the registry redirects to {target.scheme}://{target.host}:{target.port or ''}, "
                    f"another origin than {url.scheme}://{url.host}:{url.port or ''}; refused"
                )
            url = target
        else:
            raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")
        if response.status_code == httpx.codes.OK:
            return response
        response.close()
        status = response.status_code
        if status == httpx.codes.NOT_FOUND:
            raise NotFoundError(f"{what}: not found in {self.ref.name} (HTTP 404)")
        if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise RegistryError(f"{what}: access denied by {self.ref.api_host} (HTTP {status}); check --auth")
        raise RegistryError(f"{what}: {self.ref.api_host} answered HTTP {status}")

    @staticmethod
    def _read_capped(response: httpx.Response, cap: int, what: str) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            response.close()
            raise LayoutError(f"{what}: {length} bytes, over the {cap}-byte cap")
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > cap:
                    raise LayoutError(f"{what}: larger than the {cap}-byte cap")
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what}: transfer failed ({exc})") from None
        finally:
            response.close()
        return bytes(body)

    def manifest(self, reference: str, expected: Descriptor | None = None) -> tuple[Descriptor, bytes]:
        """The manifest or index named by a tag or digest; its descriptor carries the digest of the bytes."""
        what = f"manifest {self.ref.name}{'@' if reference.startswith('sha') else ':'}{reference}"
        response = self._get(f"manifests/{reference}", what, ACCEPT)
        media_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        if media_type not in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
            response.close()
            raise RegistryError(
                f"{what}: Content-Type is {media_type or 'missing'!r}, expected an image manifest or index media type"
            )
        body = self._read_capped(response, MAX_JSON_BYTES, what)
        algorithm = expected.digest.partition(":")[0] if expected is not None else "sha256"
        digest = digest_of(body, algorithm)
        if expected is not None and digest != expected.digest:
            raise LayoutError(f"{what}: content digest is {digest}, expected {expected.digest}")
        if reference.startswith(("sha256:", "sha512:")) and digest != reference:
            raise LayoutError(f"{what}: content digest is {digest}, expected {reference}")
        header = response.headers.get("Docker-Content-Digest")
        if header and header.startswith(f"{algorithm}:") and header != digest:
            raise LayoutError(f"{what}: Docker-Content-Digest header says {header}, the content's digest is {digest}")
        if expected is not None and media_type != expected.media_type:
            raise LayoutError(f"{what}: Content-Type is {media_type!r}, its descriptor says {expected.media_type!r}")
        return Descriptor(media_type, digest, len(body)), body

    def json_blob(self, desc: Descriptor, what: str, cap: int = MAX_JSON_BYTES) -> bytes:
        """A small blob, whole, checked against its descriptor's size and digest."""
        if desc.size > cap:
            raise LayoutError(f"{what} {desc.digest}: size {desc.size} exceeds the {cap}-byte cap")
        body = self._read_capped(self._get(f"blobs/{desc.digest}", what), cap, what)
        found = digest_of(body, desc.digest.partition(":")[0])
        if len(body) != desc.size or found != desc.digest:
            raise LayoutError(
                f"{what}: blob of {len(body)} bytes has digest {found}, "
                f"descriptor says {desc.size} bytes, {desc.digest}"
            )
        return body

    def open_blob(self, desc: Descriptor) -> BlobReader:
        return BlobReader(self._get(f"blobs/{desc.digest}", f"blob {desc.digest}"), desc)


class BlobReader:
    """A blob's HTTP body as a stream, hashed as it is read; the read that reaches its end raises LayoutError
    unless exactly `desc.size` bytes with `desc.digest` came (the bytes handed out before are not yet trusted)."""

    def __init__(self, response: httpx.Response, desc: Descriptor) -> None:
        self._response = response
        self._desc = desc
        self._chunks = response.iter_raw()
        self._pending = memoryview(b"")
        self._hash = hashlib.new(desc.digest.partition(":")[0])
        self._count = 0
        self._done = False

    def readinto(self, buffer: memoryview, /) -> int:
        n = 0
        try:
            while n < len(buffer) and not self._done:
                if not self._pending:
                    chunk = next(self._chunks, None)
                    if chunk is None:
                        self._done = True
                        break
                    self._pending = memoryview(chunk)
                take = min(len(self._pending), len(buffer) - n)
                buffer[n : n + take] = self._pending[:take]
                self._pending = self._pending[take:]
                n += take
        except httpx.HTTPError as exc:
            raise RegistryError(f"blob {self._desc.digest}: transfer failed ({exc})") from None
        self._hash.update(buffer[:n])
        self._count += n
        if self._count > self._desc.size:
            raise LayoutError(f"blob {self._desc.digest}: more than the descriptor's {self._desc.size} bytes")
        if self._done:
            self._finish()
        return n

    def _finish(self) -> None:
        found = f"{self._desc.digest.partition(':')[0]}:{self._hash.hexdigest()}"
        if self._count != self._desc.size or found != self._desc.digest:
            raise LayoutError(
                f"blob {self._desc.digest}: received {self._count} bytes with digest {found}, "
                f"descriptor says {self._desc.size} bytes, {self._desc.digest}"
            )

    def read(self, size: int = -1, /) -> bytes:
        buffer = bytearray(size if size >= 0 else self._desc.size - self._count + 1)
        n = self.readinto(memoryview(buffer)) if buffer else 0
        return bytes(buffer[:n])

    def close(self) -> None:
        self._response.close()


Verify = Callable[[Registry, Descriptor], None]


@dataclass
class RegistrySource:
    """A `docker://` image as a guest._manifests.ImageSource; `verify(registry, manifest descriptor)` (the
    signature policy) runs on the chosen manifest before its config or any layer is fetched."""

    registry: Registry
    verify: Verify
    platform: Platform = field(default_factory=Platform.host)

    @property
    def tag(self) -> str | None:
        return self.registry.ref.tag

    def resolve(self) -> Manifest:
        ref = self.registry.ref
        first, body = self.registry.manifest(ref.digest or ref.tag or "latest")
        documents = {first.digest: body}

        def load(desc: Descriptor, what: str) -> dict[str, Any]:
            data = documents.get(desc.digest)
            if data is None:
                data = self.registry.manifest(desc.digest, desc)[1]
            return load_json_object(data, f"{what} {desc.digest}")

        desc, doc = select_manifest(first, load, self.platform)
        manifest = parse_manifest(desc, doc)
        self.verify(self.registry, desc)
        return manifest

    def read_json_blob(self, desc: Descriptor, what: str) -> dict[str, Any]:
        return load_json_object(self.registry.json_blob(desc, what), f"{what} {desc.digest}")

    def open_blob(self, desc: Descriptor) -> BlobReader:
        return self.registry.open_blob(desc)
