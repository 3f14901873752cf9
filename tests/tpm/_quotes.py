"""Synthetic TPM quotes signed by keys generated at test time: TPMS_ATTEST / TPMT_SIGNATURE marshalled per TCG
TPM 2.0 Part 2 (the same layouts the verifier parses), wrapped in the evidence JSON of docs/evidence.md."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HASH_IDS = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
SCHEME_IDS = {"rsassa": 0x0014, "rsapss": 0x0016, "ecdsa": 0x0018}
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def selection(bank: str, indices: list[int]) -> bytes:
    bitmap = bytearray(3)
    for i in indices:
        bitmap[i // 8] |= 1 << (i % 8)
    return struct.pack(">HB", HASH_IDS[bank], 3) + bytes(bitmap)


def attest(
    pcrs: Mapping[str, Mapping[int, bytes]],
    extra_data: bytes,
    digest_hash: str = "sha256",
    *,
    magic: int = 0xFF544347,
    kind: int = 0x8018,
) -> bytes:
    """TPMS_ATTEST of a quote over `pcrs` (banks and indices in the given order)."""
    h = hashlib.new(digest_hash)
    selections = b""
    for bank, registers in pcrs.items():
        indices = sorted(registers)
        selections += selection(bank, indices)
        for i in indices:
            h.update(registers[i])
    return (
        struct.pack(">IH", magic, kind)
        + tpm2b(b"\x00\x0b" + bytes(32))  # qualifiedSigner
        + tpm2b(extra_data)
        + struct.pack(">QIIB", 123456, 7, 1, 1)  # clockInfo: clock, resetCount, restartCount, safe
        + struct.pack(">Q", 0x2019102300163636)  # firmwareVersion
        + struct.pack(">I", len(pcrs))
        + selections
        + tpm2b(h.digest())
    )


def sign(key: PrivateKey, message: bytes, scheme: str = "", hash_name: str = "sha256") -> bytes:
    """TPMT_SIGNATURE over message."""
    algorithm = HASHES[hash_name]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(algorithm)))
        size = (key.curve.key_size + 7) // 8
        body = tpm2b(r.to_bytes(size, "big")) + tpm2b(s.to_bytes(size, "big"))
        scheme = "ecdsa"
    else:
        scheme = scheme or "rsassa"
        pad = padding.PKCS1v15() if scheme == "rsassa" else padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
        body = tpm2b(key.sign(message, pad, algorithm))
    return struct.pack(">HH", SCHEME_IDS[scheme], HASH_IDS[hash_name]) + body


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def evidence(
    key: PrivateKey,
    pcrs: Mapping[str, Mapping[int, bytes]],
    extra_data: bytes,
    *,
    scheme: str = "",
    hash_name: str = "sha256",
    message: bytes | None = None,
) -> dict[str, Any]:
    message = attest(pcrs, extra_data, hash_name) if message is None else message
    return {
        "tpm_quote": {
            "message": b64(message),
            "signature": b64(sign(key, message, scheme, hash_name)),
            "pcrs": {bank: {str(i): v.hex() for i, v in regs.items()} for bank, regs in pcrs.items()},
        },
        "ak_public": b64(spki(key)),
    }
