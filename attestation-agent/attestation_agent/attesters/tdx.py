"""Intel TDX attester: quotes through configfs-tsm, the CC event log from ACPI, RTMR extension.

Quote (Linux Documentation/ABI/testing/configfs-tsm-report):
    mkdir <sysroot>/sys/kernel/config/tsm/report/<entry>; read `provider` (must be "tdx_guest") and
    `generation`; write 64 bytes to `inblob`; read `outblob` (the quote); read `generation` again: it must
    have advanced by exactly one, else another writer raced us and the quote may not be ours; rmdir.
CC event log (ACPI 6.5 5.2.34 "CC Event Log ACPI Table", CCEL): the table at
    <sysroot>/sys/firmware/acpi/tables/CCEL gives the log area minimum length (LAML); the area itself is
    <sysroot>/sys/firmware/acpi/tables/data/CCEL.
RTMR extension (runtime events, RTMR2/RTMR3 only): <sysroot>/sys/class/misc/tdx_guest/measurements/rtmrN:sha384
    on kernels that have it (write the 48-byte digest), else configfs-tsm <sysroot>/sys/kernel/config/tsm/rtmrs.
Init data is bound by the host at launch through MRCONFIGID: bind_init_data does nothing.
Runtime events (CoCo AAEL, attestation_agent.aael) extend RTMR3; their records follow the firmware's in the CCEL
the evidence carries.

Reads of configfs attributes retry briefly while empty: the kernel fills them synchronously, and a test
device emulator asynchronously.

>>> from pathlib import Path
>>> probe(Path("/nonexistent")) is None
True
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import time
from pathlib import Path

from ..aael import LOG_PATH, Bank, RuntimeLog, spec_id_header
from . import AttesterError

__all__ = ["TdxAttester", "probe"]

TSM_REPORT = Path("sys/kernel/config/tsm/report")
TSM_RTMRS = Path("sys/kernel/config/tsm/rtmrs")
TDX_GUEST_CLASS = Path("sys/class/misc/tdx_guest")
TDX_GUEST_DEV = Path("dev/tdx_guest")
CCEL_TABLE = Path("sys/firmware/acpi/tables/CCEL")
CCEL_DATA = Path("sys/firmware/acpi/tables/data/CCEL")
PROVIDER = "tdx_guest"
REPORT_DATA_SIZE = 64
RTMR_DIGEST_SIZE = 48  # SHA-384
EXTENDABLE_RTMRS = (2, 3)  # RTMR0/1 belong to the firmware (TDX guest-host communication interface spec)
# ACPI CCEL table: 36-byte system description header, CC type (1), subtype (1), reserved (2), LAML (8), LASA (8).
ACPI_HEADER_SIZE = 36
CCEL_SIGNATURE = b"CCEL"
CCEL_LAML_OFFSET = 40
CCEL_TABLE_SIZE = 56
ATTRIBUTE_WAIT_S = 5.0
_POLL_S = 0.005
AAEL_RTMR = 3
AAEL_CC_MR_INDEX = AAEL_RTMR + 1  # UEFI 2.10 38.4.1: CC MR index 1..4 = RTMR[0..3]
SHA384 = Bank("sha384")


def probe(sysroot: Path) -> TdxAttester | None:
    """A TDX guest has the tdx_guest device and configfs-tsm reports."""
    has_device = (sysroot / TDX_GUEST_CLASS).exists() or (sysroot / TDX_GUEST_DEV).exists()
    if has_device and (sysroot / TSM_REPORT).is_dir():
        return TdxAttester(sysroot)
    return None


def _read_attribute(path: Path, what: str) -> bytes:
    deadline = time.monotonic() + ATTRIBUTE_WAIT_S
    while True:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise AttesterError(f"configfs-tsm: reading {what} at {path} failed: {exc}") from exc
        if data or time.monotonic() > deadline:
            if not data:
                raise AttesterError(f"configfs-tsm: {what} at {path} stayed empty")
            return data
        time.sleep(_POLL_S)


class TdxAttester:
    tee = "tdx"

    def __init__(self, sysroot: Path) -> None:
        self.sysroot = sysroot

    def quote(self, report_data: bytes) -> bytes:
        """A TD quote whose REPORTDATA is report_data zero-padded to 64 bytes."""
        if len(report_data) > REPORT_DATA_SIZE:
            raise AttesterError(f"report data is {len(report_data)} bytes, at most {REPORT_DATA_SIZE}")
        entry = self.sysroot / TSM_REPORT / f"veritee-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            entry.mkdir()
        except OSError as exc:
            raise AttesterError(f"configfs-tsm: cannot create report entry {entry}: {exc}") from exc
        try:
            provider = _read_attribute(entry / "provider", "provider").decode(errors="replace").strip()
            if provider != PROVIDER:
                raise AttesterError(f"configfs-tsm: provider is {provider!r}, expected {PROVIDER!r}")
            generation = int(_read_attribute(entry / "generation", "generation"))
            (entry / "inblob").write_bytes(report_data.ljust(REPORT_DATA_SIZE, b"\x00"))
            quote = _read_attribute(entry / "outblob", "outblob")
            after = int(_read_attribute(entry / "generation", "generation"))
            if after != generation + 1:
                raise AttesterError(
                    f"configfs-tsm: generation went from {generation} to {after}, expected {generation + 1} "
                    "(another writer used this report entry)"
                )
        except (OSError, ValueError) as exc:
            raise AttesterError(f"configfs-tsm: report entry {entry}: {exc}") from exc
        else:
            return quote
        finally:
            _remove_entry(entry)

    def event_log(self) -> bytes | None:
        """The CC event log area, cut to the table's LAML; None when the firmware publishes none."""
        table_path, data_path = self.sysroot / CCEL_TABLE, self.sysroot / CCEL_DATA
        if not table_path.is_file() or not data_path.is_file():
            return None
        table = table_path.read_bytes()
        if len(table) < CCEL_TABLE_SIZE or table[:4] != CCEL_SIGNATURE:
            raise AttesterError(f"ACPI CCEL table at {table_path} is {len(table)} bytes or not signed CCEL")
        laml = int.from_bytes(table[CCEL_LAML_OFFSET : CCEL_LAML_OFFSET + 8], "little")
        data = data_path.read_bytes()
        if laml > len(data):
            raise AttesterError(f"CCEL LAML is {laml} bytes, the log area has only {len(data)}")
        return data[:laml]

    def extend_rtmr(self, index: int, digest: bytes) -> None:
        """Extend RTMR[index] (2 or 3) with a SHA-384 digest of a runtime event."""
        if index not in EXTENDABLE_RTMRS:
            raise AttesterError(f"RTMR{index} cannot be extended by the guest; expected one of {EXTENDABLE_RTMRS}")
        if len(digest) != RTMR_DIGEST_SIZE:
            raise AttesterError(f"RTMR digest is {len(digest)} bytes, expected {RTMR_DIGEST_SIZE} (SHA-384)")
        sysfs = self.sysroot / TDX_GUEST_CLASS / "measurements" / f"rtmr{index}:sha384"
        try:
            if sysfs.exists():
                sysfs.write_bytes(digest)
                return
            rtmrs = self.sysroot / TSM_RTMRS
            if not rtmrs.is_dir():
                raise AttesterError("no RTMR interface: neither tdx_guest measurements nor configfs-tsm rtmrs")
            entry = rtmrs / f"veritee-rtmr{index}"
            if not entry.is_dir():
                entry.mkdir()
                (entry / "index").write_text(str(index))
            (entry / "digest").write_bytes(digest)
        except OSError as exc:
            raise AttesterError(f"extending RTMR{index} failed: {exc}") from exc

    def runtime_log(self) -> RuntimeLog:
        """The AAEL: SHA-384 records for RTMR3 (CC MR index 4), extended through sysfs or configfs-tsm."""
        return RuntimeLog(
            self.sysroot / LOG_PATH,
            AAEL_RTMR,
            AAEL_CC_MR_INDEX,
            (SHA384,),
            lambda index, digests: self.extend_rtmr(index, digests[SHA384.name]),
        )

    def _event_log_with_runtime_events(self) -> bytes | None:
        """The firmware's CCEL records then the AAEL records (after a SHA-384 header when there is no CCEL)."""
        ccel = self.event_log()
        runtime = self.runtime_log().records()
        if not runtime:
            return ccel
        if ccel is None:
            return spec_id_header((SHA384,)) + runtime
        from verifier.errors import FormatError  # noqa: PLC0415 (only when runtime events exist)
        from verifier.eventlog import parse  # noqa: PLC0415

        try:
            end = parse(ccel, "ccel").size  # the log area is padded after its last record
        except FormatError as exc:
            raise AttesterError(f"the firmware's CCEL does not parse; runtime events cannot follow it: {exc}") from exc
        return ccel[:end] + runtime

    def evidence(self, report_data: bytes) -> dict[str, object]:
        """TDX evidence JSON (docs/evidence.md): the quote and the CC event log with any runtime events."""
        ccel = self._event_log_with_runtime_events()
        return {
            "quote": base64.b64encode(self.quote(report_data)).decode(),
            "cc_eventlog": None if ccel is None else base64.b64encode(ccel).decode(),
        }

    def bind_init_data(self, digest: bytes) -> None:
        """MRCONFIGID is set by the host when the TD is launched; nothing to do in the guest."""


def _remove_entry(entry: Path) -> None:
    """rmdir a report entry (configfs removes its attributes with it; a plain directory needs them gone)."""
    try:
        entry.rmdir()
    except OSError:
        with contextlib.suppress(OSError):
            for child in entry.iterdir():
                child.unlink()
            entry.rmdir()
