"""A fake TDX guest device tree under a temporary sysroot, with a thread emulating configfs-tsm.

The kernel's configfs creates a report entry's attributes on mkdir and produces the quote when `outblob` is
read; a plain directory cannot do that, so a thread polls the report folder: for each new entry it writes
`provider` and `generation`, and once `inblob` holds 64 bytes it writes a quote v4 signed by the test-only PKI
of make_test_chain (atomically, generation first). The CCEL ACPI table and log area are plain files, as in sysfs.
"""

from __future__ import annotations

import struct
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from .make_test_chain import DcapPki, make_quote

REPORT = Path("sys/kernel/config/tsm/report")


def ccel_table(laml: int, lasa: int = 0x7F000000) -> bytes:
    """ACPI 6.5 5.2.34 CCEL: 36-byte header, CC type 2 (TDX), subtype 0, reserved, LAML, LASA."""
    body = struct.pack("<BBHQQ", 2, 0, 0, laml, lasa)
    header = b"CCEL" + struct.pack("<IBB", 36 + len(body), 1, 0) + b"VERITE" + b"TESTCCEL" + bytes(12)
    return header + body


class FakeTdxDevice:
    def __init__(
        self,
        sysroot: Path,
        pki: DcapPki,
        *,
        ccel: bytes | None = None,
        rtmrs: tuple[bytes, ...] = (),
        mr_config_id: bytes = b"",
        provider: str = "tdx_guest",
        generation_step: int = 1,
    ) -> None:
        self.sysroot, self.pki, self.rtmrs, self.mr_config_id = sysroot, pki, rtmrs, mr_config_id
        self.provider, self.generation_step = provider, generation_step
        self.quotes = 0
        self._served: set[str] = set()  # entries whose quote is written: never serve one twice
        (sysroot / REPORT).mkdir(parents=True)
        (sysroot / "sys/class/misc/tdx_guest/measurements").mkdir(parents=True)
        if ccel is not None:
            tables = sysroot / "sys/firmware/acpi/tables"
            (tables / "data").mkdir(parents=True)
            (tables / "CCEL").write_bytes(ccel_table(len(ccel)))
            (tables / "data" / "CCEL").write_bytes(ccel + b"\xff" * 4096)  # the area is larger than the log
        self._scratch = Path(tempfile.mkdtemp(prefix="fake-tsm-", dir=sysroot))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeTdxDevice:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _write(self, path: Path, data: bytes) -> None:
        tmp = self._scratch / f"{path.name}.{threading.get_ident()}"
        tmp.write_bytes(data)
        tmp.replace(path)

    def _serve(self, entry: Path) -> None:
        if entry.name in self._served:
            return
        if not (entry / "provider").exists():
            self._write(entry / "generation", b"0\n")
            self._write(entry / "provider", self.provider.encode() + b"\n")
            return
        inblob = entry / "inblob"
        if (entry / "outblob").exists() or not inblob.exists() or len(inblob.read_bytes()) != 64:
            return
        quote = make_quote(self.pki, inblob.read_bytes(), mr_config_id=self.mr_config_id, rtmrs=self.rtmrs)
        self._write(entry / "generation", f"{self.generation_step}\n".encode())
        self._served.add(entry.name)
        self._write(entry / "outblob", quote)
        self.quotes += 1

    def _run(self) -> None:
        report = self.sysroot / REPORT
        while not self._stop.wait(0.002):
            for entry in report.iterdir():
                try:
                    self._serve(entry)
                except FileNotFoundError:  # the attester removed the entry meanwhile
                    continue
