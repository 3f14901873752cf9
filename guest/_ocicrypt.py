"""ocicrypt layer encryption: the public and private layer options and the AES-256-CTR + HMAC-SHA256 stream.

Formats (containers/ocicrypt, blockcipher package; SPEC section 8):
- annotation `org.opencontainers.image.enc.pubopts` = base64 of
  `{"cipher": "AES_256_CTR_HMAC_SHA256", "hmac": <b64 HMAC-SHA256(symkey, ciphertext)>, "cipheroptions": {}}`
- the private options, wrapped per recipient in `org.opencontainers.image.enc.keys.<scheme>` annotations:
  `{"symkey": <b64 32 bytes>, "digest": "sha256:<plain blob digest>", "cipheroptions": {"nonce": <b64 16>}}`
- the layer ciphertext is AES-256-CTR(symkey, nonce as the full 128-bit initial counter) of the plain blob.

`decrypt_layer` reads the ciphertext once and writes the plaintext to a private scratch file; the caller
publishes that file only after this returns, i.e. after the HMAC (checked in constant time) and the plaintext
digest both matched. Unverified plaintext is therefore never visible under a final name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from guest._errors import DecryptionError, LayoutError
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
    except (UnicodeDecodeError, json.JSONDecodeError):
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
    source: Path,
    scratch: Path,
    private: PrivateOptions,
    public: PublicOptions,
    ciphertext_digest: str,
) -> str:
    """Decrypt `source` into the new file `scratch`, verifying before returning; on failure `scratch` is gone.

    Checks, over the single streamed read: the ciphertext's digest (the manifest descriptor) and the HMAC of
    the ciphertext (ocicrypt pubopts), which authenticates the plaintext under the unwrapped key. Returns the
    plaintext blob's sha256 digest (its new descriptor digest). The private options' `digest` is not compared:
    skopeo gzips uncompressed layers before encrypting them and records the *source* blob's digest there, so it
    need not name the decrypted blob; the config's diff_id check after decompression covers the content. The
    SHA-256 computations run on worker threads (hashlib and file writes release the GIL), so the cost is close
    to that of the HMAC alone on two cores; memory is two CHUNK-sized buffers whatever the layer's size.
    """
    algorithm = ciphertext_digest.partition(":")[0]
    ct_hash = hashlib.new(algorithm)
    pt_hash = hashlib.sha256()
    mac = hmac.new(private.symkey, digestmod="sha256")
    ctr = _ctr(private.symkey, private.nonce)
    inbuf = bytearray(CHUNK)
    outbuf = bytearray(CHUNK + 15)  # update_into wants room for a block's worth more than the input
    ok = False
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with (
            open(fd, "wb", buffering=0, closefd=True) as out,  # noqa: PTH123 (an fd from os.open)
            source.open("rb", buffering=0) as src,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocicrypt") as pool,
        ):

            def sink(view: memoryview) -> None:
                pt_hash.update(view)
                _write_all(out, view)

            pending: Future[None] | None = None
            while n := src.readinto(inbuf):
                view = memoryview(inbuf)[:n]
                hashing = pool.submit(ct_hash.update, view)
                mac.update(view)
                hashing.result()
                if pending is not None:
                    pending.result()  # outbuf is free again
                ctr.update_into(view, outbuf)
                pending = pool.submit(sink, memoryview(outbuf)[:n])
            if pending is not None:
                pending.result()
        found = f"{algorithm}:{ct_hash.hexdigest()}"
        if found != ciphertext_digest:
            raise LayoutError(f"encrypted layer blob digest is {found}, descriptor says {ciphertext_digest}")
        # ocicrypt blockcipher: the HMAC authenticates the ciphertext under the layer key (constant time).
        if not hmac.compare_digest(mac.digest(), public.hmac):
            raise DecryptionError(
                f"layer {ciphertext_digest}: HMAC-SHA256 of the ciphertext does not match "
                f"{PUBOPTS_ANNOTATION} "
                "hmac (the layer was altered, or the unwrapped key is not this layer's); nothing was written"
            )
        ok = True
    finally:
        if not ok:
            scratch.unlink(missing_ok=True)
    return f"sha256:{pt_hash.hexdigest()}"


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
