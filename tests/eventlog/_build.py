"""Builds synthetic TCG2 crypto-agile logs (PFP 10.2.1 header + 10.2.2 TCG_PCR_EVENT2 records) for tests.

Defaults give a valid log; every field can be overridden to make the negative datasets.
"""

from __future__ import annotations

import hashlib
import struct

SHA1, SHA256, SHA384, SM3_256 = 0x0004, 0x000B, 0x000C, 0x0012
SIZES = {SHA1: 20, SHA256: 32, SHA384: 48, SM3_256: 32}
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_IPL = 0xD
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"


def spec_id(
    algorithms: list[tuple[int, int]],
    *,
    signature: bytes = SPEC_ID_SIGNATURE,
    count: int | None = None,
    vendor_info: bytes = b"",
) -> bytes:
    """TCG_EfiSpecIDEventStruct: signature, platformClass, version 2.0 errata 0, uintnSize 2, table."""
    body = signature + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algorithms) if count is None else count)
    body += b"".join(struct.pack("<HH", alg, size) for alg, size in algorithms)
    return body + bytes([len(vendor_info)]) + vendor_info


def header(
    spec: bytes,
    *,
    event_type: int = EV_NO_ACTION,
    digest: bytes = bytes(20),
    size: int | None = None,
) -> bytes:
    """TCG_PCClientPCREvent: pcrIndex 0, eventType, 20-byte digest, eventSize, event."""
    return struct.pack("<II", 0, event_type) + digest + struct.pack("<I", len(spec) if size is None else size) + spec


def event2(
    pcr: int,
    event_type: int,
    data: bytes,
    digests: list[tuple[int, bytes]],
    *,
    count: int | None = None,
    size: int | None = None,
) -> bytes:
    """TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event."""
    out = struct.pack("<III", pcr, event_type, len(digests) if count is None else count)
    out += b"".join(struct.pack("<H", alg) + digest for alg, digest in digests)
    return out + struct.pack("<I", len(data) if size is None else size) + data


def measured(pcr: int, event_type: int, data: bytes, algorithms: list[int]) -> bytes:
    """An event whose digests are the hash of its data in every bank (sm3 digests are zero)."""
    digests = []
    for alg in algorithms:
        name = {SHA1: "sha1", SHA256: "sha256", SHA384: "sha384"}.get(alg)
        digests.append((alg, hashlib.new(name, data).digest() if name else bytes(SIZES[alg])))
    return event2(pcr, event_type, data, digests)


def extend(name: str, old: bytes, digest: bytes) -> bytes:
    return hashlib.new(name, old + digest).digest()


def tcg2_log(*events: bytes, algorithms: tuple[int, ...] = (SHA1, SHA256)) -> bytes:
    """A valid log with the given algorithms and events."""
    return header(spec_id([(alg, SIZES[alg]) for alg in algorithms])) + b"".join(events)
