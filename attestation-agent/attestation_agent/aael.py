"""Runtime measurements: CoCo's attestation-agent event log (AAEL) and the register it extends.

An AAEL event is the text `<domain> <operation> <content>` (guest-components' `eventlog` module). It is
recorded as a TCG_PCR_EVENT2 record (TCG PC Client Platform Firmware Profile 1.05, 10.2.2) of type EV_EVENT_TAG
whose data is a TCG_PCClientTaggedEvent (PFP 10.4.2): taggedEventID 0x4141454C (ASCII "AAEL" read as a
big-endian number, stored little-endian), taggedEventDataSize, then the text. The record's digest in each bank
is that bank's hash of the tagged-event bytes, and the same digest extends the runtime register:
- TDX: RTMR[3] (SHA-384), recorded in CC measurement register index 4 (UEFI 2.10 38.4.1: 1..4 = RTMR[0..3]);
- TPM: PCR 23 (locality 0 can extend it; guest-components' PCR 17 needs locality 2-4, see attesters.tpm), in
  every bank the log's header lists.

The records are kept in a file (default `<sysroot>/run/attestation-agent/eventlog`, as guest-components does);
evidence carries them appended to the firmware log (the TDX CCEL, or the TPM's TCG2 log; a TPM without a firmware
log gets a TCG2 header naming SHA-256 only), so the verifier replays firmware and runtime events together.
A register is extended before its record is appended: a failed extend logs nothing, and a crash between the two
leaves a register that no log replays to, which verification refuses (fail closed).

>>> event_text("github.com/confidential-containers", "pull-image", "sha256:00ff")
'github.com/confidential-containers pull-image sha256:00ff'
>>> event_text("bad domain", "op", "x")
Traceback (most recent call last):
...
ValueError: domain 'bad domain' has a forbidden character: expected 1..128 of [A-Za-z0-9._:/@+-]
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "AAEL_TAG",
    "EV_EVENT_TAG",
    "LOG_PATH",
    "Bank",
    "RuntimeLog",
    "event_text",
    "record",
    "spec_id_header",
    "tagged_event",
]

EV_EVENT_TAG: Final = 0x00000006
EV_NO_ACTION: Final = 0x00000003
AAEL_TAG: Final = 0x4141454C
LOG_PATH: Final = Path("run/attestation-agent/eventlog")
MAX_FIELD: Final = 128
MAX_CONTENT: Final = 4096
_NAME: Final = re.compile(r"[A-Za-z0-9._:/@+-]{1,128}")
# TCG Algorithm Registry, TPM_ALG_ID.
_ALGORITHMS: Final = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
_SPEC_ID_SIGNATURE: Final = b"Spec ID Event03\x00"


@dataclass(frozen=True)
class Bank:
    name: str  # "sha256", "sha384", ...

    @property
    def alg_id(self) -> int:
        return _ALGORITHMS[self.name]

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.name, data).digest()


def event_text(domain: str, operation: str, content: str) -> str:
    """The AAEL event line; ValueError naming the field when one cannot be logged unambiguously."""
    for name, value in (("domain", domain), ("operation", operation)):
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"{name} {value!r} has a forbidden character: expected 1..{MAX_FIELD} of [A-Za-z0-9._:/@+-]"
            )
    if len(content.encode()) > MAX_CONTENT:
        raise ValueError(f"content is {len(content.encode())} bytes, at most {MAX_CONTENT}")
    if not content.isprintable():
        raise ValueError("content has a control character (a newline, tab or the like): one event is one line")
    return f"{domain} {operation} {content}"


def tagged_event(text: str) -> bytes:
    """TCG_PCClientTaggedEvent (PFP 10.4.2) carrying the AAEL text."""
    data = text.encode()
    return struct.pack("<II", AAEL_TAG, len(data)) + data


def record(register: int, banks: Sequence[Bank], event_data: bytes) -> bytes:
    """TCG_PCR_EVENT2 (PFP 10.2.2): pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event."""
    digests = b"".join(struct.pack("<H", bank.alg_id) + bank.digest(event_data) for bank in banks)
    return (
        struct.pack("<III", register, EV_EVENT_TAG, len(banks))
        + digests
        + struct.pack("<I", len(event_data))
        + event_data
    )


def spec_id_header(banks: Sequence[Bank]) -> bytes:
    """The SHA-1-format first event (PFP 10.2.1) holding TCG_EfiSpecIDEventStruct (PFP 10.4.5.1) for `banks`:
    platform class 0, spec version 2.0 errata 2, UINTN of 8 bytes, no vendor info."""
    table = b"".join(struct.pack("<HH", bank.alg_id, len(bank.digest(b""))) for bank in banks)
    spec = _SPEC_ID_SIGNATURE + struct.pack("<IBBBBI", 0, 0, 2, 2, 2, len(banks)) + table + b"\x00"
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec


# extend(register, {bank name: digest}) -> None: the TEE's runtime-register extend.
Extend = Callable[[int, dict[str, bytes]], None]


class RuntimeLog:
    """The agent's AAEL file and the register it extends; one writer at a time (a lock, then the file)."""

    def __init__(self, path: Path, register: int, log_register: int, banks: Sequence[Bank], extend: Extend) -> None:
        self.path = path
        self.register = register  # the TEE's register number (RTMR index, PCR index)
        self.log_register = log_register  # the record's pcrIndex (CC MR index for TDX, the PCR for a TPM)
        self.banks = tuple(banks)
        self._extend = extend
        self._lock = threading.Lock()

    def measure(self, domain: str, operation: str, content: str) -> None:
        """Extend the register with the event and append its record; ValueError for a bad event."""
        event_data = tagged_event(event_text(domain, operation, content))
        with self._lock:
            self._extend(self.register, {bank.name: bank.digest(event_data) for bank in self.banks})
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as log:
                log.write(record(self.log_register, self.banks, event_data))

    def records(self) -> bytes:
        """Every record appended so far (b"" when nothing was measured)."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
