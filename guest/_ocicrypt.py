"""ocicrypt layer encryption: the public and private layer options and the AES-256-CTR + HMAC-SHA256 stream.

Formats (containers/ocicrypt, blockcipher package; docs/images.md):
- annotation `org.opencontainers.image.enc.pubopts` = base64 of
  `{"cipher": "AES_256_CTR_HMAC_SHA256", "hmac": <b64 HMAC-SHA256(symkey, ciphertext)>, "cipheroptions": {}}`
- the private options, wrapped per recipient in `org.opencontainers.image.enc.keys.<scheme>` annotations:
  `{"symkey": <b64 32 bytes>, "digest": "sha256:<plain blob digest>", "cipheroptions": {"nonce": <b64 16>}}`
- the layer ciphertext is AES-256-CTR(symkey, nonce as the full 128-bit initial counter) of the plain blob.

`decrypt_layer` reads the ciphertext once and streams the plaintext to private consumers (scratch file,
digests, decompressor); the caller publishes only after it returned, i.e. after the HMAC (checked in constant
time) matched, and after its own diff_id check. Unverified plaintext is therefore never visible under a final name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from guest._errors import DecryptionError
from guest._manifests import BlobStream
from guest._pipeline import Consumer, fan_out
from guest._streams import CHUNK

__all__ = [
    "CIPHER_AES_CTR_HMAC",
    "KEYS_ANNOTATION_PREFIX",
    "PUBOPTS_ANNOTATION",
    "PrivateOptions",
    "PublicOptions",
    "decrypt_layer",
    "encrypt_layer",
]

PUBOPTS_ANNOTATION = "org.opencontainers.image.enc.pubopts"
KEYS_ANNOTATION_PREFIX = "org.opencontainers.image.enc.keys."
ENC_ANNOTATION_PREFIX = "org.opencontainers.image.enc."
CIPHER_AES_CTR_HMAC = "AES_256_CTR_HMAC_SHA256"  # ocicrypt blockcipher.AES256CTR
SYMKEY_SIZE = 32  # AES-256
NONCE_SIZE = 16  # AES block: ocicrypt uses the whole block as the CTR initial counter
HMAC_SIZE = 32  # SHA-256


def b64decode_field(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise DecryptionError(f"{field}: is {type(value).__name__}, expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(f"{field}: is not valid base64") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: too deeply nested
        raise DecryptionError(f"{what}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise DecryptionError(f"{what}: is a JSON {type(doc).__name__}, expected an object")
    return doc


@dataclass(frozen=True)
class PublicOptions:
    """The `pubopts` annotation: cipher and the HMAC of the ciphertext."""

    cipher: str
    hmac: bytes

    @classmethod
    def from_annotation(cls, value: str) -> PublicOptions:
        doc = _json_object(b64decode_field(value, PUBOPTS_ANNOTATION), PUBOPTS_ANNOTATION)
        cipher = doc.get("cipher")
        if cipher != CIPHER_AES_CTR_HMAC:
            raise DecryptionError(f"{PUBOPTS_ANNOTATION} cipher is {cipher!r}, expected {CIPHER_AES_CTR_HMAC!r}")
        mac = b64decode_field(doc.get("hmac"), f"{PUBOPTS_ANNOTATION} hmac")
        if len(mac) != HMAC_SIZE:
            raise DecryptionError(f"{PUBOPTS_ANNOTATION} hmac is {len(mac)} bytes, expected {HMAC_SIZE}")
        return cls(cipher, mac)

    def to_annotation(self) -> str:
        doc = {"cipher": self.cipher, "hmac": base64.b64encode(self.hmac).decode(), "cipheroptions": {}}
        return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True, repr=False)
class PrivateOptions:
    """The wrapped private options: the layer key, the CTR nonce and the plain blob's digest. Never logged."""

    symkey: bytes
    nonce: bytes
    digest: str

    def __repr__(self) -> str:
        return f"PrivateOptions(digest={self.digest!r}, symkey=<redacted>)"

    @classmethod
    def from_json(cls, data: bytes) -> PrivateOptions:
        doc = _json_object(data, "private layer options")
        symkey = b64decode_field(doc.get("symkey"), "private options symkey")
        if len(symkey) != SYMKEY_SIZE:
            raise DecryptionError(f"private options symkey is {len(symkey)} bytes, expected {SYMKEY_SIZE}")
        cipheroptions = doc.get("cipheroptions")
        if not isinstance(cipheroptions, dict):
            raise DecryptionError("private options cipheroptions is missing, expected an object with a nonce")
        nonce = b64decode_field(cipheroptions.get("nonce"), "private options cipheroptions.nonce")
        if len(nonce) != NONCE_SIZE:
            raise DecryptionError(f"private options cipheroptions.nonce is {len(nonce)} bytes, expected {NONCE_SIZE}")
        digest = doc.get("digest")
        if not isinstance(digest, str) or not digest.startswith(("sha256:", "sha512:")):
            raise DecryptionError(f"private options digest is {digest!r}, expected sha256:<hex>")
        return cls(symkey, nonce, digest)

    def to_json(self) -> bytes:
        # Field order as ocicrypt's Go struct marshals it.
        doc = {
            "symkey": base64.b64encode(self.symkey).decode(),
            "digest": self.digest,
            "cipheroptions": {"nonce": base64.b64encode(self.nonce).decode()},
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def _write_all(out: Any, view: memoryview) -> None:
    while view:
        view = view[out.write(view) :]


def _ctr(key: bytes, nonce: bytes) -> Any:
    return Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()  # CTR: encrypt == decrypt


def decrypt_layer(
    source: Path | BlobStream, private: PrivateOptions, public: PublicOptions, consumers: Sequence[Consumer], layer: str
) -> None:
    """Stream the plaintext of the ciphertext blob `source` (a file, or a stream that the caller closes) to
    `consumers`, then check the HMAC; raises DecryptionError if it does not match.

    The plaintext reaches the consumers *before* the HMAC is known: they must keep it private (a scratch file
    that the caller deletes on failure, a staging rootfs, digests) and the caller publishes nothing unless this
    returned. One read of the ciphertext: the calling thread reads, updates the HMAC and decrypts into the
    pipeline's buffers while the consumers run on their own threads (guest._pipeline).

    Checks: the HMAC of the ciphertext (ocicrypt pubopts), compared in constant time, authenticates the
    ciphertext under the unwrapped layer key. The ciphertext's SHA-256 (the manifest descriptor's digest) is
    deliberately *not* recomputed: the HMAC key and the expected HMAC come from that same descriptor, and with a
    known key HMAC-SHA256 is as collision resistant as SHA-256, so the only ciphertext that passes is the one the
    descriptor's HMAC was made over; the digest would bind nothing more, and costs a full SHA-256 pass (measured
    on a 256 MiB gzip layer: 0.16-0.21 s of CPU out of 0.8-1.1 s for the whole pass run serially, i.e. about a
    fifth). A blob swapped behind the descriptor fails the HMAC instead. (skopeo and containerd check the blob
    digest when they *pull*, where it is what binds the bytes fetched to the manifest; here the HMAC does. Whoever
    can rewrite the manifest can rewrite the digest, the HMAC and the wrapped key alike: neither check protects
    against that, only the manifest's own provenance does.) The decrypted content is then checked against the
    config's diff_id by the caller (the image's content check). The private options' `digest` is not compared:
    skopeo gzips uncompressed layers before encrypting them and records the *source* blob's digest there.
    """
    mac = hmac.new(private.symkey, digestmod="sha256")
    ctr = _ctr(private.symkey, private.nonce)
    inbuf = bytearray(CHUNK)
    with source.open("rb", buffering=0) if isinstance(source, Path) else nullcontext(source) as src:

        def fill(out: memoryview) -> int:
            n = src.readinto(memoryview(inbuf)) or 0
            view = memoryview(inbuf)[:n]
            mac.update(view)  # hmac releases the GIL for large buffers: overlaps with the consumers
            ctr.update_into(view, out)
            return n

        fan_out(fill, consumers)
    # ocicrypt blockcipher: the HMAC authenticates the ciphertext under the layer key (constant time).
    if not hmac.compare_digest(mac.digest(), public.hmac):
        raise DecryptionError(
            f"layer {layer}: HMAC-SHA256 of the ciphertext does not match {PUBOPTS_ANNOTATION} "
            "hmac (the layer was altered, or the unwrapped key is not this layer's); nothing was written"
        )


def encrypt_layer(source: Path, target: Path, symkey: bytes, nonce: bytes) -> tuple[str, PublicOptions]:
    """Encrypt a plain layer blob as ocicrypt does; returns the plain blob's digest and the public options.

    The image owner's side (tests and the demo use it where skopeo with key providers is unavailable).
    """
    plain_hash = hashlib.sha256()
    mac = hmac.new(symkey, digestmod="sha256")
    ctr = _ctr(symkey, nonce)
    buf = bytearray(CHUNK)
    outbuf = bytearray(CHUNK + 15)
    with source.open("rb", buffering=0) as src, target.open("xb", buffering=0) as out:
        while n := src.readinto(buf):
            view = memoryview(buf)[:n]
            plain_hash.update(view)
            ctr.update_into(view, outbuf)
            mac.update(memoryview(outbuf)[:n])
            _write_all(out, memoryview(outbuf)[:n])
    return f"sha256:{plain_hash.hexdigest()}", PublicOptions(CIPHER_AES_CTR_HMAC, mac.digest())
