"""Secrets at rest: AES-256-GCM under the key-encryption key (KEK), bound to what the secret is (AAD)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SealError", "Sealer", "load_or_create_kek"]

KEK_SIZE = 32
NONCE_SIZE = 12


class SealError(Exception):
    """A sealed value that does not open under this KEK (wrong key, or tampered storage)."""


class Sealer:
    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_SIZE:
            raise ValueError(f"key-encryption key is {len(kek)} bytes, expected {KEK_SIZE}")
        self._aead = AESGCM(kek)

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad.encode())

    def open(self, sealed: bytes, aad: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"stored secret {aad!r} does not open under the configured KEK") from exc


def load_or_create_kek(path: Path, *, create: bool) -> bytes:
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"key-encryption key file {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEK_SIZE))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"key-encryption key file {path} is readable by others (mode {mode & 0o777:o})")
    kek = path.read_bytes()
    if len(kek) != KEK_SIZE:
        raise ValueError(f"key-encryption key file {path} holds {len(kek)} bytes, expected {KEK_SIZE}")
    return kek
