"""The parsed event log: frozen dataclasses, replay, and the one function that turns a log into JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._decode import decode_details
from ._replay import replay_events
from ._tables import Algorithm

__all__ = ["Event", "EventLog", "Kind", "SpecId"]

Kind = Literal["tcg2", "ccel"]


@dataclass(frozen=True)
class SpecId:
    """TCG_EfiSpecIDEventStruct (PFP 10.4.5.1), the data of the log's first event."""

    platform_class: int
    spec_version: tuple[int, int, int]  # (major, minor, errata)
    uintn_size: int  # 1 = UINT32, 2 = UINT64
    algorithms: tuple[Algorithm, ...]  # the digestSizes table, in log order
    vendor_info: bytes


@dataclass(frozen=True)
class Event:
    """One TCG_PCR_EVENT2 record (PFP 10.2.2); the SHA-1 header event is the log's `spec_id`, not an Event.

    index: the position in `EventLog.events` (0 = the first record after the header); offset: its byte offset.

    register: the PCR index as a decimal string ("0".."23") in a TCG2 log; "mrtd" or "rtmr0".."rtmr3" in a
    CCEL (UEFI 2.10 38.4.1). digests: bank name ("sha1", "sha256", "sha384", ...) to the digest the
    firmware extended.
    """

    index: int
    offset: int
    pcr_index: int
    register: str
    event_type: int
    type_name: str
    digests: Mapping[str, bytes] = field(hash=False)  # a read-only mapping: not hashable itself
    data: bytes

    @property
    def details(self) -> dict[str, object] | None:
        """The event data decoded where its type has a known layout (variable names, strings), else None."""
        return decode_details(self.event_type, self.data)


@dataclass(frozen=True)
class EventLog:
    """A parsed TCG2 crypto-agile log or CCEL.

    size: the offset where the last record ends; only padding (0x00 or 0xFF) may follow it.
    """

    kind: Kind
    spec_id: SpecId
    events: tuple[Event, ...]
    startup_locality: int | None
    size: int

    def replay(self) -> dict[str, dict[str, bytes]]:
        """bank -> register -> the value the log's events extend it to, for every register the log extends.

        TCG2: every bank of the Spec ID table this library can hash; PCRs start at zero, PCR0 at the
        StartupLocality (PFP 10.4.5.3) when the log carries one. CCEL: the sha384 bank of rtmr0..rtmr3,
        starting at 48 zero bytes; MRTD is not replayed (the TDX module measures it, not the firmware).
        """
        return replay_events(self.kind, self.spec_id.algorithms, self.events, self.startup_locality)

    def to_json(self) -> dict[str, object]:
        """The JSON document of the log: `{"kind", "events": [...], "registers": {bank: {register: hex}}}`."""
        events: list[dict[str, object]] = []
        for event in self.events:
            doc: dict[str, object] = {
                "index": event.index,
                "register": event.register,
                "pcr_index": event.pcr_index,
                "event_type": event.event_type,
                "type_name": event.type_name,
                "digests": {bank: digest.hex() for bank, digest in event.digests.items()},
                "data": event.data.hex(),
            }
            details = event.details
            if details is not None:
                doc["details"] = details
            events.append(doc)
        registers = {
            bank: {register: value.hex() for register, value in values.items()}
            for bank, values in self.replay().items()
        }
        return {
            "kind": self.kind,
            "spec_version": ".".join(str(part) for part in self.spec_id.spec_version),
            "algorithms": {a.name: a.digest_size for a in self.spec_id.algorithms},
            "startup_locality": self.startup_locality,
            "size": self.size,
            "events": events,
            "registers": registers,
        }
