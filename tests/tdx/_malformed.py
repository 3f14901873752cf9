"""PCK chains holding a malformed certificate, made by editing the DER of a good one (no re-signing: the
errors surface before any signature is checked). Shared by tests/tdx/test_malformed_certificates.py and the
differential suite (tests/oracles/test_tdx.py)."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable

from cryptography.hazmat.primitives.serialization import Encoding

from .make_test_chain import DcapPki

__all__ = ["CASES", "ROOT_POSITION", "bad_key_usage", "bad_version", "malformed_chain"]

ROOT_POSITION = 2  # leaf, PCK CA, root: the chain as type-5 certification data carries it

KEY_USAGE_OID = bytes.fromhex("0603551d0f")  # id-ce-keyUsage, DER-encoded OID


def bad_version(der: bytes) -> bytes:
    """TBSCertificate version [0] EXPLICIT INTEGER 2 (v3) -> 5, which no X.509 version is."""
    at = der.index(bytes.fromhex("a003020102")) + 4
    return der[:at] + b"\x05" + der[at + 1 :]


def bad_key_usage(der: bytes) -> bytes:
    """The KeyUsage BIT STRING claims 9 unused bits (at most 7 exist): parsed only when extensions are read."""
    at = der.index(KEY_USAGE_OID) + len(KEY_USAGE_OID) + 3 + 2  # critical BOOLEAN, OCTET STRING header
    assert der[at] == 0x03, "KeyUsage value is a BIT STRING"
    return der[: at + 2] + b"\x09" + der[at + 3 :]


def _pem(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def malformed_chain(pki: DcapPki, position: int, edit: Callable[[bytes], bytes]) -> bytes:
    ders = [c.public_bytes(Encoding.DER) for c in (pki.pck, pki.pck_ca, pki.root)]
    ders[position] = edit(ders[position])
    return b"".join(_pem(d) for d in ders)


CASES = {
    "leaf-version": (0, bad_version),
    "pck-ca-version": (1, bad_version),
    "leaf-key-usage": (0, bad_key_usage),
    "pck-ca-key-usage": (1, bad_key_usage),
    "root-key-usage": (ROOT_POSITION, bad_key_usage),
}
