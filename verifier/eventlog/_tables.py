"""Named tables of the TCG2 crypto-agile event log: event types, hash algorithms, size caps, CC registers.

Sources:
- TCG PC Client Platform Firmware Profile Specification (PFP) 1.05, section 10 "Event Logging":
  10.2.1 TCG_PCClientPCREvent (the SHA-1 header event), 10.2.2 TCG_PCR_EVENT2, 10.4.1 Event Types,
  10.4.5.1 TCG_EfiSpecIDEventStruct, 10.4.5.3 StartupLocality event.
- TCG Algorithm Registry 1.34, table 3 (TPM_ALG_ID).
- UEFI 2.10 section 38.4.1 (EFI_CC_MEASUREMENT_PROTOCOL): CC measurement register index 0 = MRTD,
  1..4 = RTMR[0..3] for Intel TDX; the CCEL ACPI table's log uses these indexes in TCG_PCR_EVENT2.pcrIndex.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "ALGORITHMS",
    "CCEL_REGISTERS",
    "EVENT_TYPE_NAMES",
    "EV_EFI_ACTION",
    "EV_EFI_BOOT_SERVICES_APPLICATION",
    "EV_EFI_BOOT_SERVICES_DRIVER",
    "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    "EV_EFI_RUNTIME_SERVICES_DRIVER",
    "EV_EFI_VARIABLE_AUTHORITY",
    "EV_EFI_VARIABLE_BOOT",
    "EV_EFI_VARIABLE_BOOT2",
    "EV_EFI_VARIABLE_DRIVER_CONFIG",
    "EV_EVENT_TAG",
    "EV_IPL",
    "EV_NO_ACTION",
    "EV_POST_CODE",
    "EV_SEPARATOR",
    "EV_S_CRTM_VERSION",
    "HEADER_DIGEST_SIZE",
    "MAX_ALGORITHMS",
    "MAX_EVENTS",
    "MAX_EVENT_DATA_SIZE",
    "MAX_LOG_SIZE",
    "MAX_VENDOR_INFO_SIZE",
    "SPEC_ID_SIGNATURE",
    "STARTUP_LOCALITY_SIGNATURE",
    "TCG2_MAX_PCR",
    "Algorithm",
    "HashObject",
    "algorithm_name",
    "event_type_name",
]

# --- Size caps, checked before and while parsing (a log is attacker-supplied bytes) ---
MAX_LOG_SIZE: Final = 16 * 1024 * 1024  # a CCEL area is at most a few MiB; a TPM log far less
MAX_EVENTS: Final = 100_000  # firmware logs hold hundreds; room for runtime (RTMR3) events
MAX_EVENT_DATA_SIZE: Final = 1024 * 1024  # the largest real events are dbx/db variables, tens of KiB
MAX_ALGORITHMS: Final = 32  # TCG_EfiSpecIDEventStruct.numberOfAlgorithms: the registry has fewer hashes
MAX_VENDOR_INFO_SIZE: Final = 255  # vendorInfoSize is a UINT8 (PFP 10.4.5.1)

# --- PFP 10.2.1: the first event is a TCG_PCClientPCREvent with a SHA-1-sized digest field ---
HEADER_DIGEST_SIZE: Final = 20
# PFP 10.4.5.1: TCG_EfiSpecIDEventStruct.signature, 16 bytes, NUL-terminated.
SPEC_ID_SIGNATURE: Final = b"Spec ID Event03\x00"
# PFP 10.4.5.3: TCG_EfiStartupLocalityEvent.Signature, 16 bytes, then one byte StartupLocality.
STARTUP_LOCALITY_SIGNATURE: Final = b"StartupLocality\x00"

# PC Client PCRs 0..23 (PFP 2.3.4, PCR usage).
TCG2_MAX_PCR: Final = 23

# UEFI 2.10 38.4.1: CC measurement register index -> TDX register. MRTD (index 0) is measured by the TDX
# module at build time, so its events are listed but never replayed.
CCEL_REGISTERS: Final[tuple[str, ...]] = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")

# --- PFP 10.4.1 Event Types ---
EV_PREBOOT_CERT: Final = 0x00000000
EV_POST_CODE: Final = 0x00000001
EV_UNUSED: Final = 0x00000002
EV_NO_ACTION: Final = 0x00000003
EV_SEPARATOR: Final = 0x00000004
EV_ACTION: Final = 0x00000005
EV_EVENT_TAG: Final = 0x00000006
EV_S_CRTM_CONTENTS: Final = 0x00000007
EV_S_CRTM_VERSION: Final = 0x00000008
EV_CPU_MICROCODE: Final = 0x00000009
EV_PLATFORM_CONFIG_FLAGS: Final = 0x0000000A
EV_TABLE_OF_DEVICES: Final = 0x0000000B
EV_COMPACT_HASH: Final = 0x0000000C
EV_IPL: Final = 0x0000000D
EV_IPL_PARTITION_DATA: Final = 0x0000000E
EV_NONHOST_CODE: Final = 0x0000000F
EV_NONHOST_CONFIG: Final = 0x00000010
EV_NONHOST_INFO: Final = 0x00000011
EV_OMIT_BOOT_DEVICE_EVENTS: Final = 0x00000012
EV_POST_CODE2: Final = 0x00000013
EV_EFI_EVENT_BASE: Final = 0x80000000
EV_EFI_VARIABLE_DRIVER_CONFIG: Final = EV_EFI_EVENT_BASE + 0x1
EV_EFI_VARIABLE_BOOT: Final = EV_EFI_EVENT_BASE + 0x2
EV_EFI_BOOT_SERVICES_APPLICATION: Final = EV_EFI_EVENT_BASE + 0x3
EV_EFI_BOOT_SERVICES_DRIVER: Final = EV_EFI_EVENT_BASE + 0x4
EV_EFI_RUNTIME_SERVICES_DRIVER: Final = EV_EFI_EVENT_BASE + 0x5
EV_EFI_GPT_EVENT: Final = EV_EFI_EVENT_BASE + 0x6
EV_EFI_ACTION: Final = EV_EFI_EVENT_BASE + 0x7
EV_EFI_PLATFORM_FIRMWARE_BLOB: Final = EV_EFI_EVENT_BASE + 0x8
EV_EFI_HANDOFF_TABLES: Final = EV_EFI_EVENT_BASE + 0x9
EV_EFI_PLATFORM_FIRMWARE_BLOB2: Final = EV_EFI_EVENT_BASE + 0xA
EV_EFI_HANDOFF_TABLES2: Final = EV_EFI_EVENT_BASE + 0xB
EV_EFI_VARIABLE_BOOT2: Final = EV_EFI_EVENT_BASE + 0xC
EV_EFI_GPT_EVENT2: Final = EV_EFI_EVENT_BASE + 0xD
EV_EFI_HCRTM_EVENT: Final = EV_EFI_EVENT_BASE + 0x10
EV_EFI_VARIABLE_AUTHORITY: Final = EV_EFI_EVENT_BASE + 0xE0
EV_EFI_SPDM_FIRMWARE_BLOB: Final = EV_EFI_EVENT_BASE + 0xE1
EV_EFI_SPDM_FIRMWARE_CONFIG: Final = EV_EFI_EVENT_BASE + 0xE2
EV_EFI_SPDM_DEVICE_POLICY: Final = EV_EFI_EVENT_BASE + 0xE3
EV_EFI_SPDM_DEVICE_AUTHORITY: Final = EV_EFI_EVENT_BASE + 0xE4

EVENT_TYPE_NAMES: Final[dict[int, str]] = {
    EV_PREBOOT_CERT: "EV_PREBOOT_CERT",
    EV_POST_CODE: "EV_POST_CODE",
    EV_UNUSED: "EV_UNUSED",
    EV_NO_ACTION: "EV_NO_ACTION",
    EV_SEPARATOR: "EV_SEPARATOR",
    EV_ACTION: "EV_ACTION",
    EV_EVENT_TAG: "EV_EVENT_TAG",
    EV_S_CRTM_CONTENTS: "EV_S_CRTM_CONTENTS",
    EV_S_CRTM_VERSION: "EV_S_CRTM_VERSION",
    EV_CPU_MICROCODE: "EV_CPU_MICROCODE",
    EV_PLATFORM_CONFIG_FLAGS: "EV_PLATFORM_CONFIG_FLAGS",
    EV_TABLE_OF_DEVICES: "EV_TABLE_OF_DEVICES",
    EV_COMPACT_HASH: "EV_COMPACT_HASH",
    EV_IPL: "EV_IPL",
    EV_IPL_PARTITION_DATA: "EV_IPL_PARTITION_DATA",
    EV_NONHOST_CODE: "EV_NONHOST_CODE",
    EV_NONHOST_CONFIG: "EV_NONHOST_CONFIG",
    EV_NONHOST_INFO: "EV_NONHOST_INFO",
    EV_OMIT_BOOT_DEVICE_EVENTS: "EV_OMIT_BOOT_DEVICE_EVENTS",
    EV_POST_CODE2: "EV_POST_CODE2",
    EV_EFI_VARIABLE_DRIVER_CONFIG: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    EV_EFI_VARIABLE_BOOT: "EV_EFI_VARIABLE_BOOT",
    EV_EFI_BOOT_SERVICES_APPLICATION: "EV_EFI_BOOT_SERVICES_APPLICATION",
    EV_EFI_BOOT_SERVICES_DRIVER: "EV_EFI_BOOT_SERVICES_DRIVER",
    EV_EFI_RUNTIME_SERVICES_DRIVER: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    EV_EFI_GPT_EVENT: "EV_EFI_GPT_EVENT",
    EV_EFI_ACTION: "EV_EFI_ACTION",
    EV_EFI_PLATFORM_FIRMWARE_BLOB: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    EV_EFI_HANDOFF_TABLES: "EV_EFI_HANDOFF_TABLES",
    EV_EFI_PLATFORM_FIRMWARE_BLOB2: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    EV_EFI_HANDOFF_TABLES2: "EV_EFI_HANDOFF_TABLES2",
    EV_EFI_VARIABLE_BOOT2: "EV_EFI_VARIABLE_BOOT2",
    EV_EFI_GPT_EVENT2: "EV_EFI_GPT_EVENT2",
    EV_EFI_HCRTM_EVENT: "EV_EFI_HCRTM_EVENT",
    EV_EFI_VARIABLE_AUTHORITY: "EV_EFI_VARIABLE_AUTHORITY",
    EV_EFI_SPDM_FIRMWARE_BLOB: "EV_EFI_SPDM_FIRMWARE_BLOB",
    EV_EFI_SPDM_FIRMWARE_CONFIG: "EV_EFI_SPDM_FIRMWARE_CONFIG",
    EV_EFI_SPDM_DEVICE_POLICY: "EV_EFI_SPDM_DEVICE_POLICY",
    EV_EFI_SPDM_DEVICE_AUTHORITY: "EV_EFI_SPDM_DEVICE_AUTHORITY",
}


def event_type_name(event_type: int) -> str:
    """The PFP name of an event type, or `EV_UNKNOWN_0x........` for values the table does not list."""
    return EVENT_TYPE_NAMES.get(event_type, f"EV_UNKNOWN_{event_type:#010x}")


class HashObject(Protocol):
    """The part of a hashlib object that replay uses."""

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class Algorithm:
    """A TPM_ALG_ID hash: its name, its digest size, and a hash constructor when this library replays it."""

    alg_id: int
    name: str
    digest_size: int
    new: Callable[[], HashObject] | None


def _hasher(name: str) -> Callable[[], HashObject]:
    def new() -> HashObject:
        return hashlib.new(name)

    return new


# TCG Algorithm Registry, table 3: the hash algorithms a Spec ID event may list. Only those that every
# Python build guarantees are replayed; the others (SM3) are parsed by size and kept, never replayed.
ALGORITHMS: Final[dict[int, Algorithm]] = {
    a.alg_id: a
    for a in (
        Algorithm(0x0004, "sha1", 20, hashlib.sha1),
        Algorithm(0x000B, "sha256", 32, hashlib.sha256),
        Algorithm(0x000C, "sha384", 48, hashlib.sha384),
        Algorithm(0x000D, "sha512", 64, hashlib.sha512),
        Algorithm(0x0012, "sm3_256", 32, None),
        Algorithm(0x0027, "sha3_256", 32, _hasher("sha3_256")),
        Algorithm(0x0028, "sha3_384", 48, _hasher("sha3_384")),
        Algorithm(0x0029, "sha3_512", 64, _hasher("sha3_512")),
    )
}


def algorithm_name(alg_id: int) -> str:
    """The registry name of a hash algorithm id, or `alg_0x....` for ids the registry table does not list."""
    known = ALGORITHMS.get(alg_id)
    return known.name if known else f"alg_{alg_id:#06x}"
