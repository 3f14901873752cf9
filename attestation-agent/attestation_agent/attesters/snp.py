"""AMD SEV-SNP attester: the report (and the host's certificates) for a 64-byte REPORT_DATA.

Two kernel interfaces, tried in this order:
 1. configfs-tsm (Linux 6.7+, Documentation/ABI/testing/configfs-tsm): mkdir an entry under
    `/sys/kernel/config/tsm/report`, check `provider` is `sev_guest`, write `inblob`, read `outblob` (the
    report) and `auxblob` (the GHCB certificate table), check `generation` did not move (no other writer
    raced us), rmdir the entry;
 2. `/dev/sev-guest` ioctls SNP_GET_EXT_REPORT (report + certificate table), falling back to SNP_GET_REPORT.

The evidence is guest-components' (docs/evidence.md): the report and the certificate table as the sev crate's
serde JSON (`_sev_serde`), so a trustee KBS accepts it as well as Veritee's. A report that the crate could not
decode either (a version 2 report with a masked CHIP_ID) goes in Veritee's earlier base64 shape instead.

HOST_DATA, where the init-data digest is bound, is set by the host at launch: the guest does nothing for it.
Both interfaces sit behind seams (`TsmFs`, `IoctlFn`) so tests can run them against a fake device tree.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from . import AttesterError
from ._sev_guest import IoctlFn, SevGuestError, get_ext_report, get_report, parse_cert_table, system_ioctl
from ._sev_serde import UndecodableReportError, cert_chain_json, sev_report_json

__all__ = ["ConfigfsTsm", "OsTsmFs", "SevGuestDevice", "SnpAttester", "TsmFs", "probe"]

REPORT_DATA_SIZE = 64
TSM_REPORT_DIR = "sys/kernel/config/tsm/report"
SEV_GUEST_DEVICE = "dev/sev-guest"
TSM_PROVIDER = "sev_guest"
TSM_PRIVLEVEL = 0  # VMPL 0


class TsmFs(Protocol):
    """The file operations configfs-tsm needs; the real one is the OS, tests give a fake that acts like it."""

    def mkdir(self, path: Path) -> None: ...

    def rmdir(self, path: Path) -> None: ...

    def read(self, path: Path) -> bytes: ...

    def write(self, path: Path, data: bytes) -> None: ...


class OsTsmFs:
    def mkdir(self, path: Path) -> None:
        path.mkdir()

    def rmdir(self, path: Path) -> None:
        path.rmdir()

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        with path.open("wb", buffering=0) as f:  # one write(2): configfs attributes take the value whole
            f.write(data)


class ConfigfsTsm:
    """One report through a fresh configfs-tsm entry."""

    def __init__(self, report_dir: Path, fs: TsmFs | None = None) -> None:
        self.report_dir = report_dir
        self.fs = fs or OsTsmFs()

    def _generation(self, entry: Path) -> int:
        raw = self.fs.read(entry / "generation").strip()
        try:
            return int(raw)
        except ValueError:
            raise AttesterError(f"configfs-tsm generation is {raw!r}, expected a decimal number") from None

    def report(self, report_data: bytes) -> tuple[bytes, bytes]:
        entry = self.report_dir / f"veritee-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.fs.mkdir(entry)
        except OSError as exc:
            raise AttesterError(f"configfs-tsm: cannot create {entry}: {exc.strerror}") from exc
        try:
            provider = self.fs.read(entry / "provider").decode(errors="replace").strip()
            if provider != TSM_PROVIDER:
                raise AttesterError(f"configfs-tsm provider is {provider!r}, expected {TSM_PROVIDER!r}")
            if (entry / "privlevel").exists():
                self.fs.write(entry / "privlevel", f"{TSM_PRIVLEVEL}\n".encode())
            self.fs.write(entry / "inblob", report_data)
            generation = self._generation(entry)
            outblob = self.fs.read(entry / "outblob")
            auxblob = self.fs.read(entry / "auxblob") if (entry / "auxblob").exists() else b""
            after = self._generation(entry)
        except OSError as exc:
            raise AttesterError(f"configfs-tsm: {exc.filename}: {exc.strerror}") from exc
        finally:
            # a leftover entry is harmless (reclaimed at the next boot); the report is what matters
            with contextlib.suppress(OSError):
                self.fs.rmdir(entry)
        if after != generation:
            raise AttesterError(
                f"configfs-tsm generation moved from {generation} to {after}: another writer changed the request; retry"
            )
        return outblob, auxblob


class SevGuestDevice:
    """Reports through /dev/sev-guest."""

    def __init__(self, path: Path, ioctl: IoctlFn = system_ioctl) -> None:
        self.path = path
        self.ioctl = ioctl

    def report(self, report_data: bytes) -> tuple[bytes, bytes]:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise AttesterError(f"{self.path}: {exc.strerror}") from exc
        try:
            try:
                return get_ext_report(fd, report_data, self.ioctl)
            except SevGuestError:
                # hosts without certificate support (or old kernels) may refuse the extended request
                return get_report(fd, report_data, self.ioctl), b""
        except SevGuestError as exc:
            raise AttesterError(str(exc)) from exc
        finally:
            os.close(fd)


class _Backend(Protocol):
    def report(self, report_data: bytes) -> tuple[bytes, bytes]: ...


class SnpAttester:
    tee = "snp"

    def __init__(self, backend: _Backend) -> None:
        self.backend = backend

    def evidence(self, report_data: bytes) -> dict[str, object]:
        """docs/evidence.md: {"attestation_report", "cert_chain"} for report_data zero-padded to 64 bytes."""
        if len(report_data) > REPORT_DATA_SIZE:
            raise AttesterError(f"report data is {len(report_data)} bytes, at most {REPORT_DATA_SIZE}")
        padded = report_data + bytes(REPORT_DATA_SIZE - len(report_data))
        report, table = self.backend.report(padded)
        try:
            parsed = parse_cert_table(table)
        except SevGuestError as exc:
            raise AttesterError(str(exc)) from exc
        try:
            return {"attestation_report": sev_report_json(report), "cert_chain": cert_chain_json(list(parsed.entries))}
        except UndecodableReportError:
            encoded = {name: base64.b64encode(der).decode() for name, der in parsed.certificates.items()}
            return {"attestation_report": base64.b64encode(report).decode(), "certificates": encoded or None}

    def bind_init_data(self, digest: bytes) -> None:  # noqa: ARG002 (the Attester protocol)
        return None  # HOST_DATA is fixed at launch by the host


def probe(sysroot: Path, *, ioctl: IoctlFn | None = None, tsm_fs: TsmFs | None = None) -> SnpAttester | None:
    """SNP when the sev-guest device exists; configfs-tsm preferred when the kernel offers it."""
    device = sysroot / SEV_GUEST_DEVICE
    if not device.exists():
        return None
    tsm = sysroot / TSM_REPORT_DIR
    if tsm.is_dir():
        return SnpAttester(ConfigfsTsm(tsm, tsm_fs))
    return SnpAttester(SevGuestDevice(device, ioctl or system_ioctl))
