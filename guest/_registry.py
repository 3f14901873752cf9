"""Pulling from an OCI registry (the OCI distribution spec, `GET /v2/<name>/manifests/<ref>` and `/blobs/<digest>`).

Every document and blob is checked against the digest that names it: a manifest fetched by tag gets its digest
from its bytes (the digest that the signature policy then checks), one fetched by digest must hash to it, and
blobs are hashed as they stream and fail at their end on a size or digest mismatch (nothing downstream is
published before that: guest._image builds in a staging directory). Documents read whole are capped
(guest._manifests.MAX_JSON_BYTES) before they are read. Redirects are followed only to the same scheme, host and
port (a registry that sends us elsewhere is refused), at most MAX_REDIRECTS times. HTTPS is required unless the
host:port was named by --insecure-registry. Authentication is guest._registry_auth's; HTTP is guest._http's
(the standard library: blobs are read with readinto straight into the pipeline's buffers).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from guest._errors import LayoutError, RegistryError
from guest._http import HttpPool, Url
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
from guest._registry_auth import MAX_TOKEN_BYTES, Credentials, RegistryAuth
from guest._streams import BackgroundHash

__all__ = ["NotFoundError", "Registry", "RegistrySource"]

MAX_REDIRECTS = 5
TIMEOUT = 30.0  # seconds per connect and per read
ACCEPT = ", ".join((*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES))
_REDIRECTS = (301, 302, 303, 307, 308)
_HTTP_ERRORS = (OSError, http.client.HTTPException)


class NotFoundError(RegistryError):
    """The registry has no such manifest or blob (HTTP 404)."""


class Registry:
    """One repository of one registry, over kept-alive connections (the auth token is reused)."""

    def __init__(
        self,
        ref: DockerReference,
        *,
        credentials: Credentials | None = None,
        insecure_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.ref = ref
        scheme = "http" if ref.api_host in insecure_hosts else "https"
        try:
            self.base = Url.parse(f"{scheme}://{ref.api_host}/v2/{ref.repository}/")
        except ValueError as exc:
            raise RegistryError(f"{ref}: {exc}") from None
        self._auth = RegistryAuth(ref.repository, credentials, insecure_hosts)
        self._pool = HttpPool(TIMEOUT)

    def close(self) -> None:
        self._pool.close()

    def _send(self, url: Url, headers: dict[str, str], what: str) -> http.client.HTTPResponse:
        """One GET with the Authorization earned so far; a 401 is answered (Basic, or a Bearer token) and retried."""
        for _ in range(2):
            send = dict(headers)
            if self._auth.authorization is not None and url.origin == self.base.origin:
                send["Authorization"] = self._auth.authorization
            try:
                response = self._pool.get(url, send)
            except _HTTP_ERRORS as exc:
                raise RegistryError(f"{what}: cannot reach {url.host_port} ({exc or type(exc).__name__})") from None
            if response.status != HTTPStatus.UNAUTHORIZED or url.origin != self.base.origin:
                return response
            challenge = response.getheader("WWW-Authenticate", "")
            _drain(response)
            if not self._auth.answer(challenge, url, self._token_get):
                return response
        return response

    def _token_get(self, url: Url, headers: dict[str, str]) -> tuple[int, bytes]:
        what = f"token service {url.host_port}"
        try:
            response = self._pool.get(url, {**headers, "Accept": "application/json"})
            return response.status, self._read_capped(response, MAX_TOKEN_BYTES, what)
        except _HTTP_ERRORS as exc:
            raise RegistryError(f"{what}: cannot reach it ({exc or type(exc).__name__})") from None

    def _get(self, path: str, what: str, accept: str | None = None) -> http.client.HTTPResponse:
        """GET below the repository's base, following same-origin redirects; a 200 response, body unread."""
        url = self.base.join(path)
        headers = {"Accept": accept} if accept else {}
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, headers, what)
            if response.status not in _REDIRECTS:
                break
            location = response.getheader("Location", "")
            _drain(response)
            try:
                target = url.join(location)
            except ValueError:
                raise RegistryError(f"{what}: the registry redirects to {location!r}, not an http(s) URL") from None
            if target.origin != url.origin:
                raise RegistryError(
                    f"{what}: the registry redirects to {target.scheme}://{target.host_port}, another origin than "
                    f"{url.scheme}://{url.host_port}; refused"
                )
            url = target
        else:
            raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")
        status = response.status
        if status == HTTPStatus.OK:
            return response
        _drain(response)
        if status == HTTPStatus.NOT_FOUND:
            raise NotFoundError(f"{what}: not found in {self.ref.name} (HTTP 404)")
        if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            raise RegistryError(f"{what}: access denied by {self.ref.api_host} (HTTP {status}); check --auth")
        raise RegistryError(f"{what}: {self.ref.api_host} answered HTTP {status}")

    @staticmethod
    def _read_capped(response: http.client.HTTPResponse, cap: int, what: str) -> bytes:
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            response.close()
            raise LayoutError(f"{what}: {length} bytes, over the {cap}-byte cap")
        try:
            body = response.read(cap + 1)
            if len(body) > cap:
                response.close()
                raise LayoutError(f"{what}: larger than the {cap}-byte cap")
            if response.read(1):  # a Content-Length shorter than the body cannot be; only EOF may follow
                response.close()
                raise LayoutError(f"{what}: larger than the {cap}-byte cap")
        except _HTTP_ERRORS as exc:
            response.close()
            raise RegistryError(f"{what}: transfer failed ({exc or type(exc).__name__})") from None
        return body

    def manifest(self, reference: str, expected: Descriptor | None = None) -> tuple[Descriptor, bytes]:
        """The manifest or index named by a tag or digest; its descriptor carries the digest of the bytes."""
        what = f"manifest {self.ref.name}{'@' if reference.startswith('sha') else ':'}{reference}"
        response = self._get(f"manifests/{reference}", what, ACCEPT)
        media_type = (response.getheader("Content-Type") or "").partition(";")[0].strip()
        if media_type not in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
            response.close()
            raise RegistryError(
                f"{what}: Content-Type is {media_type or 'missing'!r}, expected an image manifest or index media type"
            )
        header = response.getheader("Docker-Content-Digest")
        body = self._read_capped(response, MAX_JSON_BYTES, what)
        algorithm = expected.digest.partition(":")[0] if expected is not None else "sha256"
        digest = digest_of(body, algorithm)
        if expected is not None and digest != expected.digest:
            raise LayoutError(f"{what}: content digest is {digest}, expected {expected.digest}")
        if reference.startswith(("sha256:", "sha512:")) and digest != reference:
            raise LayoutError(f"{what}: content digest is {digest}, expected {reference}")
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


def _drain(response: http.client.HTTPResponse) -> None:
    """Read a small error or redirect body so that the connection can be reused (or close it when it is large)."""
    try:
        if len(response.read(64 * 1024)) == 64 * 1024:
            response.close()
    except _HTTP_ERRORS:
        response.close()


class BlobReader:
    """A blob's HTTP body as a stream, hashed as it is read; the read that reaches its end raises LayoutError
    unless exactly `desc.size` bytes with `desc.digest` came (the bytes handed out before are not yet trusted).

    The digest of what `readinto` returned is computed on a worker thread while the caller uses the bytes; the
    next `readinto` (or `close`) waits for it first. The caller must therefore leave a buffer unchanged until its
    next call (reading it, hashing it, decrypting it into another buffer are fine)."""

    def __init__(self, response: http.client.HTTPResponse, desc: Descriptor) -> None:
        self._response = response
        self._desc = desc
        self._hash = BackgroundHash(desc.digest.partition(":")[0])
        self._count = 0
        self._done = False

    def readinto(self, buffer: memoryview, /) -> int:
        self._hash.wait()  # the previous buffer may be the caller's next one
        n = 0
        try:
            while n < len(buffer) and not self._done:
                got = self._response.readinto(buffer[n:])
                if not got:
                    self._done = True
                n += got
        except _HTTP_ERRORS as exc:
            raise RegistryError(f"blob {self._desc.digest}: transfer failed ({exc or type(exc).__name__})") from None
        self._count += n
        if self._count > self._desc.size:
            raise LayoutError(f"blob {self._desc.digest}: more than the descriptor's {self._desc.size} bytes")
        if n:
            self._hash.update(buffer[:n])
        if self._done:
            self._hash.wait()
            self._finish()
        return n

    def _finish(self) -> None:
        found = f"{self._desc.digest.partition(':')[0]}:{self._hash.hash.hexdigest()}"
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
        self._hash.close()
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
