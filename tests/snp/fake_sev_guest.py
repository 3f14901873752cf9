"""A fake SEV-SNP guest for tests: a configfs-tsm tree that behaves like the kernel's, and a recorded
/dev/sev-guest ioctl double. Both answer with reports signed by a test-only VCEK (make_test_chain.py)."""

from __future__ import annotations

import ctypes
import errno
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from attestation_agent.attesters import _sev_guest as sg

from tests.snp.make_test_chain import Chain, ReportFields, Vek, make_report
from verifier.snp import Tcb

GUIDS = {
    "vcek": "63da758d-e664-4564-adc5-f4b93be8accd",
    "vlek": "a8074bc2-a25a-483e-aae6-39c045a0b8a1",
    "ask": "4ab7b379-bbac-4fe4-a02f-05aef327c782",
    "ark": "c0b406a4-a803-4952-9743-3fb6014cd0ae",
}


def cert_table(certs: dict[str, bytes], extra: dict[str, bytes] | None = None, pad_to: int = 0) -> bytes:
    """A GHCB certificate table: entries {GUID, offset, length}, an all-zero terminator, then the blobs."""
    items = [(uuid.UUID(GUIDS[n]).bytes, der) for n, der in certs.items()]
    items += [(uuid.UUID(g).bytes, der) for g, der in (extra or {}).items()]
    offset = 24 * (len(items) + 1)
    head, body = b"", b""
    for guid, der in items:
        head += guid + struct.pack("<II", offset + len(body), len(der))
        body += der
    table = head + bytes(24) + body
    return table + bytes(max(0, pad_to - len(table)))


@dataclass
class SnpGuest:
    """The signing side: what the PSP would sign for a given REPORT_DATA (and HOST_DATA from launch)."""

    chain: Chain
    vcek: Vek
    host_data: bytes = bytes(32)
    policy: int = 0x30000
    measurement: bytes = bytes(range(48))  # the launch digest (make_test_chain's default)

    def report(self, report_data: bytes) -> bytes:
        fields = ReportFields(
            report_data=report_data, host_data=self.host_data, policy=self.policy, measurement=self.measurement
        )
        return make_report(self.vcek, self.chain.product, fields)

    def table(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return cert_table(
            {
                "vcek": self.vcek.der,
                "ask": self.chain.ask.public_bytes(Encoding.DER),
                "ark": self.chain.ark.public_bytes(Encoding.DER),
            }
        )


@dataclass
class FakeTsmFs:
    """configfs-tsm as a plain directory: mkdir populates the attributes the kernel would, outblob and auxblob
    are generated from the inblob when read, rmdir drops the attributes with the entry."""

    guest: SnpGuest
    provider: str = "sev_guest"
    bump_generation_on_read: bool = False
    log: list[str] = field(default_factory=list)

    def mkdir(self, path: Path) -> None:
        self.log.append(f"mkdir {path.name}")
        path.mkdir()
        (path / "provider").write_text(f"{self.provider}\n")
        (path / "generation").write_text("0\n")
        (path / "privlevel").write_text("0\n")
        (path / "inblob").write_bytes(b"")
        (path / "outblob").write_bytes(b"")
        (path / "auxblob").write_bytes(b"")

    def rmdir(self, path: Path) -> None:
        self.log.append(f"rmdir {path.name}")
        for child in path.iterdir():
            child.unlink()
        path.rmdir()

    def read(self, path: Path) -> bytes:
        self.log.append(f"read {path.name}")
        inblob = (path.parent / "inblob").read_bytes()
        if path.name == "outblob":
            if self.bump_generation_on_read:
                (path.parent / "generation").write_text("7\n")
            return self.guest.report(inblob)
        if path.name == "auxblob":
            return self.guest.table()
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        self.log.append(f"write {path.name} {len(data)}")
        path.write_bytes(data)
        if path.name == "inblob":
            generation = int((path.parent / "generation").read_text())
            (path.parent / "generation").write_text(f"{generation + 1}\n")


@dataclass
class RecordedSevGuest:
    """An ioctl double for /dev/sev-guest: checks the exact request bytes the kernel would read and answers
    like the driver (the extended request first fails with SNP_GUEST_VMM_ERR_INVALID_LEN and the size)."""

    guest: SnpGuest
    needed_certs_len: int = 5 * 4096
    ext_supported: bool = True
    calls: list[tuple[int, bytes]] = field(default_factory=list)

    def __call__(self, fd: int, request: int, arg: sg.snp_guest_request_ioctl) -> int:
        assert arg.msg_version == 1
        if request == sg.SNP_GET_EXT_REPORT:
            raw = ctypes.string_at(arg.req_data, ctypes.sizeof(sg.snp_ext_report_req))
            self.calls.append((request, raw))
            user_data, vmpl, rsvd = raw[:64], raw[64:68], raw[68:96]
            certs_address, certs_len = struct.unpack_from("<QI", raw, 96)
            assert vmpl == bytes(4)
            assert rsvd == bytes(28)
            assert raw[108:112] == bytes(4)  # padding
            if not self.ext_supported:
                arg.exitinfo2 = 0x16  # firmware: INVALID_PARAM
                raise OSError(errno.EIO, "Input/output error")
            if certs_len < self.needed_certs_len:
                ctypes.memmove(arg.req_data + 104, struct.pack("<I", self.needed_certs_len), 4)
                arg.exitinfo2 = sg.SNP_GUEST_VMM_ERR_INVALID_LEN << 32
                raise OSError(errno.EINVAL, "Invalid argument")
            table = self.guest.table()
            ctypes.memmove(certs_address, table, len(table))
        elif request == sg.SNP_GET_REPORT:
            raw = ctypes.string_at(arg.req_data, ctypes.sizeof(sg.snp_report_req))
            self.calls.append((request, raw))
            user_data = raw[:64]
            assert raw[64:] == bytes(32)  # VMPL 0 and reserved
        else:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        report = self.guest.report(user_data)
        response = struct.pack("<II", 0, len(report)) + bytes(24) + report
        ctypes.memmove(arg.resp_data, response, len(response))
        return 0


def tcb_of(vek: Vek) -> Tcb:
    from verifier.snp import decode_tcb

    return decode_tcb(vek.tcb, turin=False)
