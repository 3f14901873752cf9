"""Fixtures for guest tests: key pairs on disk and a small two-layer image."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.guest._images import dir_, file_, link_, tar_bytes


def _write_pair(folder: Path, name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Test-only key pairs generated at test time: name -> (private PEM path, public PEM path)."""
    folder = tmp_path_factory.mktemp("keys")
    return {
        "rsa": _write_pair(folder, "rsa", rsa.generate_private_key(65537, 2048)),
        "ec": _write_pair(folder, "ec", ec.generate_private_key(ec.SECP256R1())),
        "other": _write_pair(folder, "other", rsa.generate_private_key(65537, 2048)),
    }


BASE_LAYER = tar_bytes(
    [
        dir_("etc"),
        file_("etc/motd", b"hello from an encrypted layer\n"),
        file_("etc/removed", b"gone in layer 2"),
        dir_("opt/app", 0o755),
        file_("opt/app/old", b"old"),
        dir_("opt/ro", 0o555),
        file_("opt/ro/inside", b"x", 0o444),
        file_("usr/bin/tool", b"#!/bin/sh\n", 0o4755),
        link_("bin", "usr/bin"),
        link_("etc/localtime", "/usr/share/zoneinfo/UTC"),
    ]
)
UPPER_LAYER = tar_bytes(
    [
        file_("etc/.wh.removed"),
        file_("opt/app/.wh..wh..opq"),
        file_("opt/app/new", b"new"),
        file_("bin/added", b"through the bin symlink", 0o755),
        link_("etc/motd.link", "etc/motd", tarfile.LNKTYPE),
    ]
)
