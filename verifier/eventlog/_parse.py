"""Bytes -> EventLog: the TCG2 crypto-agile log format (TCG PC Client PFP 1.05, section 10), shared by the
TPM event log and the TDX CC event log (CCEL, UEFI 2.10 38.4).

Layout:
    TCG_PCClientPCREvent      header: pcrIndex, eventType = EV_NO_ACTION, SHA-1-sized zero digest,
                              eventSize, event = TCG_EfiSpecIDEventStruct ("Spec ID Event03")
    TCG_PCR_EVENT2 ...        pcrIndex, eventType, TPML_DIGEST_VALUES (count, {hashAlg, digest}...),
                              eventSize, event; digest sizes come from the Spec ID table
    padding                   a CCEL area (and some TPM logs) ends in 0x00 or 0xFF bytes after the last record
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

from .._reader import Reader
from ..errors import FormatError, Reason
from ._model import Event, EventLog, Kind, SpecId
from ._tables import (
    ALGORITHMS,
    CCEL_REGISTERS,
    EV_NO_ACTION,
    HEADER_DIGEST_SIZE,
    MAX_ALGORITHMS,
    MAX_EVENT_DATA_SIZE,
    MAX_EVENTS,
    MAX_LOG_SIZE,
    SPEC_ID_SIGNATURE,
    STARTUP_LOCALITY_SIGNATURE,
    TCG2_MAX_PCR,
    Algorithm,
    algorithm_name,
    event_type_name,
)

__all__ = ["parse"]

KINDS: Final = ("tcg2", "ccel")
# A digest size beyond any registered hash is a corrupt Spec ID table, not a new algorithm.
MAX_DIGEST_SIZE: Final = 128
# PFP 10.4.5.1: other versions of the Spec ID event (the legacy SHA-1 log's "Spec ID Event00") are
# unsupported formats rather than malformed ones.
_SPEC_ID_OTHER_VERSION: Final = re.compile(rb"Spec ID Event\d\d\x00")
_STARTUP_LOCALITY_SIZE: Final = len(STARTUP_LOCALITY_SIGNATURE) + 1
# PFP 10.2 / CCEL: a log area is padded with 0x00 or 0xFF after the last record (a 1 MiB CCEL is mostly
# padding). Trailing runs are measured with bytes.startswith(block, offset), a memcmp without copies, over
# blocks of decreasing size: at most 15 comparisons per size once the largest blocks are consumed.
_PADDING_BYTES: Final = (0x00, 0xFF)
_PADDING_BLOCKS: Final = (64 * 1024, 4 * 1024, 256, 16, 1)
_PADDING_PATTERNS: Final = {pad: tuple(bytes([pad]) * block for block in _PADDING_BLOCKS) for pad in _PADDING_BYTES}


def parse(data: bytes, kind: Kind) -> EventLog:
    """Parse a TCG2 crypto-agile event log ("tcg2") or a CCEL area ("ccel"); FormatError on bad bytes.

    Trailing padding (all 0x00 or all 0xFF after the last record) ends the log.
    """
    if kind not in KINDS:
        raise FormatError(f"event log kind is {kind!r}, expected one of {list(KINDS)}", Reason.UNSUPPORTED_FORMAT)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError(f"{kind} event log is a {type(data).__name__}, expected bytes")
    if len(data) > MAX_LOG_SIZE:
        raise FormatError(f"{kind} event log is {len(data)} bytes, over the limit of {MAX_LOG_SIZE}")
    data = bytes(data)
    # The offset from which the rest of the input is padding: a record starting at or after it cannot
    # exist, one starting before it must parse.
    padding_start = min(_trailing_run_start(data, pad) for pad in _PADDING_BYTES)
    reader = Reader(data, f"{kind} event log")
    spec_id = _header(reader, kind)
    table = {a.alg_id: a for a in spec_id.algorithms}
    events: list[Event] = []
    startup_locality: int | None = None
    while reader.offset < padding_start:
        if len(events) >= MAX_EVENTS:
            raise FormatError(f"{kind} event log has more than {MAX_EVENTS} events")
        event = _event2(reader, kind, len(events), table)
        if event.event_type == EV_NO_ACTION and event.data.startswith(STARTUP_LOCALITY_SIGNATURE):
            startup_locality = _startup_locality(event, kind, startup_locality)
        events.append(event)
    return EventLog(
        kind=kind,
        spec_id=spec_id,
        events=tuple(events),
        startup_locality=startup_locality,
        size=reader.offset,
    )


def _trailing_run_start(data: bytes, pad: int) -> int:
    """The offset where the trailing run of `pad` bytes starts (len(data) when data does not end in it)."""
    end = len(data)
    for block, pattern in zip(_PADDING_BLOCKS, _PADDING_PATTERNS[pad], strict=True):
        while end >= block and data.startswith(pattern, end - block):
            end -= block
    return end


def _header(reader: Reader, kind: Kind) -> SpecId:
    """PFP 10.2.1 TCG_PCClientPCREvent carrying the TCG_EfiSpecIDEventStruct; it extends nothing."""
    # pcrIndex should be 0, but OVMF's CCEL writes 1: the field is read and not checked.
    reader.u32le("header.pcrIndex")
    event_type = reader.u32le("header.eventType")
    if event_type != EV_NO_ACTION:
        raise FormatError(
            f"{kind} event log: header.eventType is {event_type:#x} ({event_type_name(event_type)}), "
            f"expected {EV_NO_ACTION:#x} (EV_NO_ACTION)"
        )
    reader.must_be_zero(HEADER_DIGEST_SIZE, "header.digest")
    size = reader.u32le("header.eventSize")
    if size > MAX_EVENT_DATA_SIZE:
        raise FormatError(f"{kind} event log: header.eventSize is {size}, over the limit of {MAX_EVENT_DATA_SIZE}")
    return _spec_id(reader.take(size, "header.event"), kind)


def _spec_id(data: bytes, kind: Kind) -> SpecId:
    """PFP 10.4.5.1 TCG_EfiSpecIDEventStruct."""
    r = Reader(data, f"{kind} event log Spec ID event")
    signature = r.take(len(SPEC_ID_SIGNATURE), "signature")
    if signature != SPEC_ID_SIGNATURE:
        legacy = _SPEC_ID_OTHER_VERSION.fullmatch(signature) is not None
        reason = Reason.UNSUPPORTED_FORMAT if legacy else Reason.MALFORMED_EVIDENCE
        raise FormatError(
            f"{kind} event log: Spec ID event signature is {signature!r}, expected {SPEC_ID_SIGNATURE!r} "
            "(TCG2 crypto-agile format)",
            reason,
        )
    platform_class = r.u32le("platformClass")
    minor = r.u8("specVersionMinor")
    major = r.u8("specVersionMajor")
    errata = r.u8("specErrata")
    uintn_size = r.u8("uintnSize")
    count = r.u32le("numberOfAlgorithms")
    if not 1 <= count <= MAX_ALGORITHMS:
        raise FormatError(f"{kind} event log: Spec ID numberOfAlgorithms is {count}, expected 1 to {MAX_ALGORITHMS}")
    algorithms: list[Algorithm] = []
    for i in range(count):
        alg_id = r.u16le(f"digestSizes[{i}].algorithmId")
        digest_size = r.u16le(f"digestSizes[{i}].digestSize")
        algorithms.append(_algorithm(alg_id, digest_size, i, kind))
    names = [a.name for a in algorithms]
    if len(set(names)) != len(names):
        raise FormatError(f"{kind} event log: Spec ID digestSizes lists an algorithm twice: {names}")
    vendor_info = r.take(r.u8("vendorInfoSize"), "vendorInfo")
    r.finish()
    return SpecId(
        platform_class=platform_class,
        spec_version=(major, minor, errata),
        uintn_size=uintn_size,
        algorithms=tuple(algorithms),
        vendor_info=vendor_info,
    )


def _algorithm(alg_id: int, digest_size: int, i: int, kind: Kind) -> Algorithm:
    known = ALGORITHMS.get(alg_id)
    if known is not None:
        if digest_size != known.digest_size:
            raise FormatError(
                f"{kind} event log: Spec ID digestSizes[{i}].digestSize for {known.name} is {digest_size}, "
                f"expected {known.digest_size}"
            )
        return known
    # Unknown algorithm: its digests are parsed by the size the table gives and kept, never replayed.
    if not 1 <= digest_size <= MAX_DIGEST_SIZE:
        raise FormatError(
            f"{kind} event log: Spec ID digestSizes[{i}].digestSize for {algorithm_name(alg_id)} is "
            f"{digest_size}, expected 1 to {MAX_DIGEST_SIZE}"
        )
    return Algorithm(alg_id, algorithm_name(alg_id), digest_size, None)


def _event2(reader: Reader, kind: Kind, index: int, table: dict[int, Algorithm]) -> Event:
    """PFP 10.2.2 TCG_PCR_EVENT2."""
    offset = reader.offset
    field = f"event[{index}]"
    pcr_index = reader.u32le(f"{field}.pcrIndex")
    register = _register(pcr_index, kind, index)
    event_type = reader.u32le(f"{field}.eventType")
    count = reader.u32le(f"{field}.digests.count")
    # PFP 10.2.2: the TPML_DIGEST_VALUES holds one digest per algorithm of the Spec ID event, so every
    # bank can be replayed from every record.
    if count != len(table):
        raise FormatError(
            f"{kind} event log: {field}.digests.count at offset {offset:#x} is {count}, expected "
            f"{len(table)} (numberOfAlgorithms of the Spec ID event)"
        )
    digests: dict[str, bytes] = {}
    for i in range(count):
        alg_id = reader.u16le(f"{field}.digests[{i}].hashAlg")
        alg = table.get(alg_id)
        if alg is None:
            raise FormatError(
                f"{kind} event log: {field}.digests[{i}].hashAlg is {alg_id:#06x} "
                f"({algorithm_name(alg_id)}), expected one of the Spec ID table "
                f"{[f'{a:#06x}' for a in table]}"
            )
        if alg.name in digests:
            raise FormatError(f"{kind} event log: {field}.digests lists {alg.name} twice")
        digests[alg.name] = reader.take(alg.digest_size, f"{field}.digests[{i}].digest")
    size = reader.u32le(f"{field}.eventSize")
    if size > MAX_EVENT_DATA_SIZE:
        raise FormatError(f"{kind} event log: {field}.eventSize is {size}, over the limit of {MAX_EVENT_DATA_SIZE}")
    data = reader.take(size, f"{field}.event")
    return Event(
        index=index,
        offset=offset,
        pcr_index=pcr_index,
        register=register,
        event_type=event_type,
        type_name=event_type_name(event_type),
        digests=MappingProxyType(digests),
        data=data,
    )


def _register(pcr_index: int, kind: Kind, index: int) -> str:
    if kind == "ccel":
        if pcr_index >= len(CCEL_REGISTERS):
            raise FormatError(
                f"ccel event log: event[{index}].pcrIndex (CC measurement register index) is {pcr_index}, "
                f"expected 0 (MRTD) to {len(CCEL_REGISTERS) - 1} (RTMR[3])"
            )
        return CCEL_REGISTERS[pcr_index]
    if pcr_index > TCG2_MAX_PCR:
        raise FormatError(f"tcg2 event log: event[{index}].pcrIndex is {pcr_index}, expected 0 to {TCG2_MAX_PCR}")
    return str(pcr_index)


def _startup_locality(event: Event, kind: Kind, seen: int | None) -> int:
    """PFP 10.4.5.3 TCG_EfiStartupLocalityEvent: "StartupLocality\\0" then the locality byte."""
    if len(event.data) != _STARTUP_LOCALITY_SIZE:
        raise FormatError(
            f"{kind} event log: event[{event.index}] StartupLocality event is {len(event.data)} bytes, "
            f"expected {_STARTUP_LOCALITY_SIZE}"
        )
    if seen is not None:
        raise FormatError(f"{kind} event log: event[{event.index}] is a second StartupLocality event")
    return event.data[-1]
