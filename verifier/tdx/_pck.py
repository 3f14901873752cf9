"""The PCK certificate chain of a quote and the Intel SGX extensions of the PCK leaf certificate.

[PCK] "Intel SGX PCK Certificate and Certificate Revocation List Profile Specification" (rev. 1.5), section
3.5 "Intel SGX PCK Certificate" extensions: OID 1.2.840.113741.1.13.1 holds a SEQUENCE of
SEQUENCE { OID, value } with the PPID, the TCB (16 SGX TCB component SVNs, PCESVN, CPUSVN), the PCE-ID, the
FMSPC, the SGX type and, for platform-CA certificates, the platform instance ID and configuration.
`cryptography` gives the raw extension value; a minimal bounded DER walker reads it
here (no ASN.1 dependency).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from .._reader import Reader
from ..errors import FormatError

__all__ = ["SGX_EXTENSIONS_OID", "PckExtensions", "parse_pck_chain_pem", "parse_sgx_extensions"]

SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"
_SGX = (1, 2, 840, 113741, 1, 13, 1)
# [PCK] 3.5 sub-OIDs under _SGX.
_PPID = (*_SGX, 1)
_TCB = (*_SGX, 2)
_PCEID = (*_SGX, 3)
_FMSPC = (*_SGX, 4)
_SGX_TYPE = (*_SGX, 5)
_PLATFORM_INSTANCE_ID = (*_SGX, 6)
_CONFIGURATION = (*_SGX, 7)
_TCB_COMP_COUNT = 16  # tcb.1 .. tcb.16: SGX TCB component SVNs
_TCB_PCESVN = 17
_TCB_CPUSVN = 18
PPID_SIZE = 16
PCEID_SIZE = 2
FMSPC_SIZE = 6
CPUSVN_SIZE = 16

# DER tags (X.690).
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06
_ENUMERATED = 0x0A
_SEQUENCE = 0x30
_MAX_LEN_BYTES = 4
_MAX_CHAIN_PEM = 64 * 1024

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class PckExtensions:
    ppid: bytes
    cpusvn: bytes
    tcb_comp_svns: tuple[int, ...]
    pce_svn: int
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None


def _tlv(r: Reader) -> tuple[int, bytes]:
    tag = r.u8("DER tag")
    first = r.u8("DER length")
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > _MAX_LEN_BYTES:
            raise FormatError(f"{r.what}: DER length uses {count} bytes, expected 1..4 (definite form)")
        length = int.from_bytes(r.take(count, "DER long length"), "big")
    return tag, r.take(length, f"DER value of tag {tag:#x}")


def _expect(r: Reader, tag: int, field: str) -> bytes:
    found, value = _tlv(r)
    if found != tag:
        raise FormatError(f"{r.what}: {field} has DER tag {found:#x}, expected {tag:#x}")
    return value


def _oid(value: bytes, what: str) -> tuple[int, ...]:
    if not value or value[-1] & 0x80:
        raise FormatError(f"{what}: OBJECT IDENTIFIER {value.hex()} is truncated")
    arcs: list[int] = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    first = min(arcs[0] // 40, 2)
    return (first, arcs[0] - 40 * first, *arcs[1:])


def _uint(value: bytes, what: str) -> int:
    if not value or value[0] & 0x80:
        raise FormatError(f"{what}: INTEGER {value.hex()} is empty or negative, expected an SVN")
    return int.from_bytes(value, "big")


def _sized(value: bytes, size: int, field: str) -> bytes:
    if len(value) != size:
        raise FormatError(f"PCK SGX extensions: {field} is {len(value)} bytes, expected {size}")
    return value


def _entries(content: bytes, what: str) -> dict[tuple[int, ...], tuple[int, bytes]]:
    """The content of a SEQUENCE OF SEQUENCE { OID, value } as {oid: (tag, value)}; no duplicate OIDs."""
    seq = Reader(content, what)
    out: dict[tuple[int, ...], tuple[int, bytes]] = {}
    while seq.remaining:
        item = Reader(_expect(seq, _SEQUENCE, "entry"), what)
        oid = _oid(_expect(item, _OID, "entry OID"), what)
        tag, value = _tlv(item)
        item.finish()
        if oid in out:
            raise FormatError(f"{what}: OID {'.'.join(map(str, oid))} appears twice")
        out[oid] = (tag, value)
    return out


def _field(entries: dict[tuple[int, ...], tuple[int, bytes]], oid: tuple[int, ...], tag: int, field: str) -> bytes:
    found = entries.get(oid)
    if found is None:
        raise FormatError(f"PCK SGX extensions: {field} ({'.'.join(map(str, oid))}) is missing")
    if found[0] != tag:
        raise FormatError(f"PCK SGX extensions: {field} has DER tag {found[0]:#x}, expected {tag:#x}")
    return found[1]


def parse_sgx_extensions(value: bytes) -> PckExtensions:
    """Parse the DER value of extension 1.2.840.113741.1.13.1 ([PCK] 3.5)."""
    outer = Reader(value, "PCK SGX extensions")
    entries = _entries(_expect(outer, _SEQUENCE, "extension"), "PCK SGX extensions")
    outer.finish()
    tcb = _entries(_field(entries, _TCB, _SEQUENCE, "TCB"), "PCK SGX extensions TCB")
    comps = tuple(
        _uint(_field(tcb, (*_TCB, i), _INTEGER, f"TCB.SGXTCBCOMP{i:02d}SVN"), "TCB component SVN")
        for i in range(1, _TCB_COMP_COUNT + 1)
    )
    instance = entries.get(_PLATFORM_INSTANCE_ID)
    return PckExtensions(
        ppid=_sized(_field(entries, _PPID, _OCTET_STRING, "PPID"), PPID_SIZE, "PPID"),
        cpusvn=_sized(_field(tcb, (*_TCB, _TCB_CPUSVN), _OCTET_STRING, "TCB.CPUSVN"), CPUSVN_SIZE, "CPUSVN"),
        tcb_comp_svns=comps,
        pce_svn=_uint(_field(tcb, (*_TCB, _TCB_PCESVN), _INTEGER, "TCB.PCESVN"), "PCESVN"),
        pce_id=_sized(_field(entries, _PCEID, _OCTET_STRING, "PCE-ID"), PCEID_SIZE, "PCE-ID"),
        fmspc=_sized(_field(entries, _FMSPC, _OCTET_STRING, "FMSPC"), FMSPC_SIZE, "FMSPC"),
        sgx_type=_uint(_field(entries, _SGX_TYPE, _ENUMERATED, "SGX Type"), "SGX Type"),
        platform_instance_id=instance[1] if instance is not None and instance[0] == _OCTET_STRING else None,
    )


def parse_pck_chain_pem(pem: bytes) -> tuple[bytes, ...]:
    """The DER certificates of certification data type 5 ("Concatenated PCK Cert Chain"), leaf first.

    The PEM may end in NUL bytes (trap 2 of the vectors); anything but whitespace between blocks is malformed.
    """
    if len(pem) > _MAX_CHAIN_PEM:
        raise FormatError(f"PCK certificate chain is {len(pem)} bytes, at most {_MAX_CHAIN_PEM} accepted")
    text = pem.rstrip(b"\x00")
    ders: list[bytes] = []
    end = 0
    for match in _PEM_CERT.finditer(text):
        if text[end : match.start()].strip():
            raise FormatError("PCK certificate chain: unexpected bytes between PEM certificates")
        end = match.end()
        try:
            ders.append(base64.b64decode(b"".join(match.group(1).split()), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise FormatError(f"PCK certificate chain: certificate {len(ders)} is not base64 ({exc})") from exc
    if text[end:].strip():
        raise FormatError("PCK certificate chain: unexpected bytes after the last PEM certificate")
    if not ders:
        raise FormatError("PCK certificate chain: no PEM certificate in certification data type 5")
    return tuple(ders)
