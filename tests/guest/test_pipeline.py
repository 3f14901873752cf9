"""The fused decryption pass: TarDigest (gzip members, zstd frames, corrupt and truncated streams, bombs),
fan_out's buffer hand-over, ChunkQueue, and decrypt_image / unpack_image failing after a valid HMAC."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from guest import ImageRef, Keyring, LayoutError, decrypt_image, unpack_image
from guest._encrypt import encrypt_image, jwe_recipient
from guest._pipeline import GZIP_ERROR, ChunkQueue, TarDigest, fan_out
from guest._streams import CHUNK, Compression, GunzipReader
from tests.guest._images import LAYER_TYPES, file_, layer_blob, manifest_of, rewrite_layer, tar_bytes, write_image

TAR = tar_bytes([file_("a", os.urandom(300_000)), file_("b", b"x" * 200_000)])
DIFF_ID = "sha256:" + hashlib.sha256(TAR).hexdigest()


def _digest(blob: bytes, compression: Compression, piece: int = 65_536) -> str:
    tar = TarDigest(compression, "sha256", "sha256:layer")
    for start in range(0, len(blob), piece):
        tar(memoryview(blob)[start : start + piece])
    return tar.finish()


def _zstd_frames(data: bytes) -> bytes:
    half = len(data) // 2
    return zstandard.ZstdCompressor().compress(data[:half]) + zstandard.ZstdCompressor().compress(data[half:])


GOOD_STREAMS: dict[str, tuple[Callable[[bytes], bytes], Compression]] = {
    "gzip": (lambda t: gzip.compress(t, mtime=0), Compression.GZIP),
    "gzip-multi-member": (
        lambda t: gzip.compress(t[:1000], mtime=0) + gzip.compress(t[1000:], mtime=0),
        Compression.GZIP,
    ),
    "gzip-zero-padded": (lambda t: gzip.compress(t, mtime=0) + bytes(100), Compression.GZIP),
    "gzip-level-0": (lambda t: gzip.compress(t, compresslevel=0, mtime=0), Compression.GZIP),
    "zstd": (lambda t: zstandard.ZstdCompressor().compress(t), Compression.ZSTD),
    "zstd-multi-frame": (_zstd_frames, Compression.ZSTD),
    "none": (lambda t: t, Compression.NONE),
}


@pytest.mark.parametrize("piece", [1, 4096, CHUNK])
@pytest.mark.parametrize("case", sorted(GOOD_STREAMS))
def test_tar_digest_of_good_streams(case: str, piece: int) -> None:
    make, compression = GOOD_STREAMS[case]
    blob = make(TAR[:20_000] if piece == 1 else TAR)  # byte-at-a-time feeding: keep it short
    expected = "sha256:" + hashlib.sha256(TAR[:20_000] if piece == 1 else TAR).hexdigest()
    assert _digest(blob, compression, piece) == expected


def _flip(blob: bytes, at: int) -> bytes:
    data = bytearray(blob)
    data[at] ^= 0x40
    return bytes(data)


BAD_STREAMS: dict[str, tuple[Callable[[], bytes], Compression, str]] = {
    "gzip-truncated": (
        lambda: gzip.compress(TAR, mtime=0)[:-9],
        Compression.GZIP,
        "ended before the end-of-stream marker",
    ),
    "gzip-crc-wrong": (lambda: _flip(gzip.compress(TAR, mtime=0), -6), Compression.GZIP, "incorrect data check"),
    "gzip-garbage-after-member": (
        lambda: gzip.compress(TAR, mtime=0) + b"junk",
        Compression.GZIP,
        "incorrect header check",
    ),
    "gzip-not-gzip": (lambda: b"PK\x03\x04" + bytes(100), Compression.GZIP, "incorrect header check"),
    "gzip-empty": (lambda: b"", Compression.GZIP, "empty stream"),
    "zstd-garbage": (lambda: b"garbage" * 10, Compression.ZSTD, "Unknown frame descriptor"),
    "zstd-corrupted": (lambda: _flip(zstandard.ZstdCompressor().compress(TAR), 2), Compression.ZSTD, "zstd"),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_tar_digest_rejects_corrupt_streams(case: str) -> None:
    make, compression, message = BAD_STREAMS[case]
    with pytest.raises(LayoutError, match=f"corrupt {compression} stream") as caught:
        _digest(make(), compression)
    assert message in str(caught.value)


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_decompression_bomb_stays_bounded(compression: Compression) -> None:
    """256 MiB of zeros from a few hundred KiB: every output step is at most CHUNK bytes."""
    zeros = bytes(256 * 1024 * 1024)
    blob = gzip.compress(zeros, 9, mtime=0) if compression is Compression.GZIP else zstandard.compress(zeros)
    del zeros
    biggest = 0
    tar = TarDigest(compression, "sha256", "sha256:bomb")
    real_update = tar._hash.update  # observe the output step sizes

    class Spy:
        def update(self, data: bytes) -> None:
            nonlocal biggest
            biggest = max(biggest, len(data))
            real_update(data)

        def hexdigest(self) -> str:
            return str(real_update.__self__.hexdigest())  # type: ignore[attr-defined]

    tar._hash = Spy()  # type: ignore[assignment]
    tar(memoryview(blob))
    assert tar.finish() == "sha256:" + hashlib.sha256(bytes(256 * 1024 * 1024)).hexdigest()
    assert biggest <= CHUNK


def test_fan_out_hands_every_consumer_every_chunk_in_order() -> None:
    data = os.urandom(3 * CHUNK + 12345)
    offset = 0

    def fill(buffer: memoryview) -> int:
        nonlocal offset
        piece = data[offset : offset + CHUNK]
        buffer[: len(piece)] = piece
        offset += len(piece)
        return len(piece)

    seen: list[list[bytes]] = [[], []]
    threads: set[str] = set()

    def consumer(index: int) -> Callable[[memoryview], None]:
        def consume(view: memoryview) -> None:
            threads.add(threading.current_thread().name)
            seen[index].append(bytes(view))

        return consume

    assert fan_out(fill, [consumer(0), consumer(1)]) == len(data)
    assert b"".join(seen[0]) == data
    assert b"".join(seen[1]) == data
    assert threading.current_thread().name not in threads  # consumers ran on their own threads


def test_fan_out_stops_on_a_failing_consumer() -> None:
    fills = 0

    def fill(buffer: memoryview) -> int:
        nonlocal fills
        fills += 1
        buffer[:10] = bytes(10)
        return 10

    def fail(view: memoryview) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fan_out(fill, [fail])
    assert fills < 10  # an endless producer is stopped once a buffer comes back failed


def test_chunk_queue_reads_across_chunks() -> None:
    chunks = ChunkQueue()
    chunks.put(memoryview(b"abc"))
    chunks.put(memoryview(b"defg"))
    chunks.close()
    assert chunks.read(2) == b"ab"
    assert chunks.read(5) == b"c"
    assert chunks.read(-1) == b"defg"
    assert chunks.read(1) == b""
    chunks.drain()


# --- end to end: the HMAC passes (the owner encrypted bad content), the content checks must fail -------------


def _encrypted_image(tmp_path: Path, pub: Path, compression: str, blob_of: Callable[[bytes], bytes]) -> Path:
    """An image whose one layer's plain blob is `blob_of(TAR)`, encrypted with a valid HMAC."""
    plain = tmp_path / "plain"
    write_image(plain, [TAR], compression=compression)
    rewrite_layer(plain, 0, blob=blob_of(TAR))
    encrypt_image(plain, tmp_path / "enc", jwe_recipient(pub.read_bytes()), tag="v1")
    assert LAYER_TYPES[compression] in str(manifest_of(tmp_path / "enc")["layers"])
    return tmp_path / "enc"


# unpack reads the tar through tarfile, which may report a decompressor's error as a corrupt tar stream.
AFTER_VALID_HMAC: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    "gzip-corrupt-after-valid-hmac": (
        "gzip",
        lambda t: _flip(gzip.compress(t, mtime=0), 40),
        "corrupt (gzip|tar) stream",
    ),
    "gzip-truncated-after-valid-hmac": ("gzip", lambda t: gzip.compress(t, mtime=0)[:-20], "corrupt (gzip|tar) stream"),
    "zstd-corrupt-after-valid-hmac": ("zstd", lambda t: b"garbage" + t, "corrupt (zstd|tar) stream"),
    "gzip-diff-id-mismatch": ("gzip", lambda t: gzip.compress(t + bytes(512), mtime=0), "config diff_id says"),
    "zstd-diff-id-mismatch": ("zstd", lambda t: zstandard.compress(t[:-1024]), "config diff_id says"),
    "none-diff-id-mismatch": ("none", lambda t: t + bytes(512), "config diff_id says"),
}


@pytest.mark.parametrize("command", ["decrypt-image", "unpack"])
@pytest.mark.parametrize("case", sorted(AFTER_VALID_HMAC))
def test_content_failures_after_a_valid_hmac_leave_nothing(
    tmp_path: Path, keys: dict[str, tuple[Path, Path]], case: str, command: str
) -> None:
    private, public = keys["ec"]
    compression, blob_of, message = AFTER_VALID_HMAC[case]
    enc = _encrypted_image(tmp_path, public, compression, blob_of)
    keyring = Keyring(key_refs=[f"file:{private}"])
    source = ImageRef.parse(f"oci:{enc}:v1")
    run: Callable[[], object] = (
        (lambda: decrypt_image(source, ImageRef.parse(f"oci:{tmp_path / 'out'}"), keyring))
        if command == "decrypt-image"
        else (lambda: unpack_image(source, tmp_path / "out", keyring))
    )
    with pytest.raises(LayoutError, match=message):
        run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc", "plain"]  # no output, no staging left


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_multi_member_layers_round_trip(tmp_path: Path, keys: dict[str, tuple[Path, Path]], compression: str) -> None:
    private, public = keys["ec"]
    blob_of = GOOD_STREAMS["gzip-multi-member" if compression == "gzip" else "zstd-multi-frame"][0]
    enc = _encrypted_image(tmp_path, public, compression, blob_of)
    keyring = Keyring(key_refs=[f"file:{private}"])
    result = decrypt_image(ImageRef.parse(f"oci:{enc}:v1"), ImageRef.parse(f"oci:{tmp_path / 'dec'}"), keyring)
    assert result.layers[0].digest == "sha256:" + hashlib.sha256(blob_of(TAR)).hexdigest()
    assert layer_blob(tmp_path / "dec").read_bytes() == blob_of(TAR)
    assert unpack_image(ImageRef.parse(f"oci:{enc}:v1"), tmp_path / "root", keyring) == 1
    assert (tmp_path / "root" / "b").read_bytes() == b"x" * 200_000


def test_plain_layer_blob_digest_still_checked(tmp_path: Path) -> None:
    """Unencrypted layers have no HMAC: their descriptor digest is the check, in both commands."""
    write_image(tmp_path / "img", [TAR])
    blob = layer_blob(tmp_path / "img")
    blob.write_bytes(_flip(blob.read_bytes(), 100))
    with pytest.raises(LayoutError, match="blob digest is"):
        decrypt_image(ImageRef.parse(f"oci:{tmp_path / 'img'}"), ImageRef.parse(f"oci:{tmp_path / 'o'}"), Keyring())


@pytest.mark.parametrize("piece", [1, 4096, CHUNK])
@pytest.mark.parametrize("case", sorted(c for c in GOOD_STREAMS if c.startswith("gzip")))
def test_gunzip_reader_agrees_with_tar_digest(case: str, piece: int) -> None:
    """`guest unpack` inflates through GunzipReader, decrypt-image through TarDigest: the same streams pass."""
    make, _ = GOOD_STREAMS[case]
    data = TAR[:20_000] if piece == 1 else TAR
    reader = GunzipReader(io.BytesIO(make(data)))
    assert b"".join(iter(lambda: reader.read(piece), b"")) == data


@pytest.mark.parametrize("case", sorted(c for c in BAD_STREAMS if c.startswith("gzip")))
def test_gunzip_reader_rejects_what_tar_digest_rejects(case: str) -> None:
    make, _, message = BAD_STREAMS[case]
    reader = GunzipReader(io.BytesIO(make()))
    with pytest.raises((GZIP_ERROR, EOFError), match=message):
        b"".join(iter(lambda: reader.read(CHUNK), b""))
