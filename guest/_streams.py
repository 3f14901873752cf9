"""Streaming helpers: layer media types, decompression, and readers that hash what passes through them.

Everything here reads in bounded chunks (CHUNK bytes), so memory does not grow with a layer's size, and a
decompression bomb only costs time, never memory.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Protocol, cast

from guest._errors import LayoutError

__all__ = [
    "CHUNK",
    "BackgroundHash",
    "Compression",
    "GunzipReader",
    "HashingReader",
    "LayerType",
    "Readable",
    "decompressed",
    "drain",
]

CHUNK = 4 * 1024 * 1024  # large reads keep the per-call overhead of hashing and AES negligible
ENCRYPTED_SUFFIX = "+encrypted"  # ocicrypt appends this to the plain layer media type


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


# image-spec layer.md media types (and Docker's gzip layer), by compression of the tar stream.
_PLAIN_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": Compression.NONE,
    "application/vnd.oci.image.layer.v1.tar+gzip": Compression.GZIP,
    "application/vnd.oci.image.layer.v1.tar+zstd": Compression.ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": Compression.NONE,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": Compression.GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": Compression.ZSTD,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": Compression.GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": Compression.NONE,
}


@dataclass(frozen=True)
class LayerType:
    """What a layer media type says: its plain media type, its compression, whether ocicrypt encrypted it."""

    plain_media_type: str
    compression: Compression
    encrypted: bool

    @classmethod
    def of(cls, media_type: str) -> LayerType:
        encrypted = media_type.endswith(ENCRYPTED_SUFFIX)
        plain = media_type.removesuffix(ENCRYPTED_SUFFIX)
        if plain not in _PLAIN_TYPES:
            raise LayoutError(
                f"layer mediaType {media_type!r} is not a tar layer type this guest knows "
                f"(expected one of {sorted(_PLAIN_TYPES)}, optionally with {ENCRYPTED_SUFFIX!r})"
            )
        return cls(plain, _PLAIN_TYPES[plain], encrypted)


class Readable(Protocol):
    """A byte stream read sequentially (a file, a decompressor, a HashingReader)."""

    def read(self, size: int = -1, /) -> bytes | memoryview: ...


class BackgroundHash:
    """A digest updated on its own thread (hashlib releases the GIL for large buffers), so that hashing a piece runs
    on another core beside what the caller does with the same bytes (HMAC-SHA256 and AES-CTR of a blob, writing
    an inflated layer's files), instead of after it. One update at a time: `update` first waits for the previous
    one; the caller leaves the bytes unchanged until then. `close` ends the thread."""

    def __init__(self, algorithm: str) -> None:
        self.hash = hashlib.new(algorithm)
        self._inbox: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._done = threading.Semaphore(0)
        self._pending = False
        self._thread = threading.Thread(target=self._run, name="digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (view := self._inbox.get()) is not None:
            self.hash.update(view)
            self._done.release()

    def update(self, view: memoryview) -> None:
        self.wait()
        self._inbox.put(view)
        self._pending = True

    def wait(self) -> None:
        if self._pending:
            self._done.acquire()
            self._pending = False

    def close(self) -> None:
        self.wait()
        self._inbox.put(None)
        self._thread.join()


class HashingReader(io.RawIOBase):
    """A read-only stream over `inner` that hashes every byte read through it. With `background`, `read` hashes
    on a thread of its own (BackgroundHash) while the caller uses the piece, which it must leave unchanged until
    its next read; `close` then ends that thread."""

    def __init__(self, inner: Readable, algorithm: str = "sha256", *, background: bool = False) -> None:
        super().__init__()
        self._inner = inner
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._background = BackgroundHash(algorithm) if background else None
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self.count += n
        return n

    def read(self, size: int | None = -1) -> bytes | memoryview:
        if size is None or size < 0:
            return b"".join(iter(lambda: bytes(self.read(CHUNK)), b""))
        if self._background is not None:
            self._background.wait()  # the inner reader may reuse the previous piece's memory
        data = self._inner.read(size)
        if self._background is not None:
            self._background.update(memoryview(data))
        else:
            self._hash.update(data)
        self.count += len(data)
        return data

    def digest(self) -> str:
        if self._background is not None:
            self._background.wait()
            return f"{self._algorithm}:{self._background.hash.hexdigest()}"
        return f"{self._algorithm}:{self._hash.hexdigest()}"

    def close(self) -> None:
        if self._background is not None:
            self._background.close()
        super().close()


TAR_BLOCK = 512  # POSIX ustar: records are 512-byte blocks; two zero blocks end the archive


GZIP_WBITS = 31  # zlib: gzip header and trailer (RFC 1952), CRC-32 and ISIZE checked by zlib
GZIP_SLICE = 256 * 1024  # compressed input read and handed to zlib per call (its unconsumed tail is copied)


class GunzipReader:
    """A gzip stream's content, read sequentially: multi-member (pigz, appended layers), zero padding between
    members tolerated (as Python's gzip module does), output bounded by each read's size (a gzip bomb costs time,
    never memory). `raw` may return memoryviews (guest._pipeline.ChunkQueue); none is kept across its next read.
    zlib-ng inflates in 256 KiB input slices (a 1 MiB read seldom leaves an unconsumed tail to copy): Python's
    gzip.GzipFile feeds zlib 8 KiB at a time, which made the inflate calls (and their CRC-32s) a third of an
    unpack's CPU time. A corrupt stream raises zlib_ng.error; a truncated or empty one raises EOFError."""

    def __init__(self, raw: Readable) -> None:
        from zlib_ng import zlib_ng  # noqa: PLC0415 (imported by guest._pipeline already; here for clarity)

        self._zlib = zlib_ng
        self._raw = raw
        self._member: zlib_ng._Decompress | None = None
        self._members = 0
        self._input: bytes | memoryview = b""

    def _next_member(self) -> bool:
        """Start the next member; False at the end of the stream."""
        while True:
            if not self._input:
                self._input = self._raw.read(GZIP_SLICE)
                if not self._input:
                    if self._members == 0:
                        raise EOFError("empty stream, expected at least one gzip member")
                    return False
            if self._members and self._input[0] == 0:
                self._input = bytes(self._input).lstrip(b"\0")
                continue
            self._member = self._zlib.decompressobj(wbits=GZIP_WBITS)
            return True

    def read(self, size: int = -1, /) -> bytes:
        size = CHUNK if size < 0 else size
        while size:
            if self._member is None and not self._next_member():
                return b""
            member = self._member
            assert member is not None
            if not self._input:
                self._input = self._raw.read(GZIP_SLICE)
                if not self._input:
                    raise EOFError("compressed stream ended before the end-of-stream marker")
            out = member.decompress(self._input, size)
            if member.eof:
                self._input = member.unused_data
                self._member = None
                self._members += 1
            else:
                self._input = member.unconsumed_tail
            if out:
                return out
        return b""


def decompressed(raw: Readable, compression: Compression) -> Readable:
    """The uncompressed tar stream of a layer read from `raw`. (zstandard is imported here: only `guest unpack`
    reads layers through it, and `guest decrypt-image` should not pay for its import.)"""
    if compression is Compression.GZIP:
        return GunzipReader(raw)
    if compression is Compression.ZSTD:
        import zstandard  # noqa: PLC0415

        return zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], raw), read_across_frames=True, closefd=False)
    return raw


def drain(stream: Readable) -> None:
    """Read `stream` to its end (so a hashing reader under it has seen every byte)."""
    while stream.read(CHUNK):
        pass
