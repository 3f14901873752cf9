"""The /dev/sev-guest ioctls (Linux include/uapi/linux/sev-guest.h), and the GHCB certificate table.

Struct and constant names are the kernel header's; layouts follow its natural C alignment, which ctypes
reproduces (checked by the tests: struct snp_guest_request_ioctl is 32 bytes, struct snp_ext_report_req 112).
The report request/response bodies are the SEV-SNP ABI's MSG_REPORT_REQ / MSG_REPORT_RSP (Tables 21 and 25).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import uuid
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CERT_TABLE_GUIDS",
    "SNP_GET_EXT_REPORT",
    "SNP_GET_REPORT",
    "IoctlFn",
    "SevGuestError",
    "get_ext_report",
    "get_report",
    "parse_cert_table",
    "snp_ext_report_req",
    "snp_guest_request_ioctl",
    "snp_report_req",
    "snp_report_resp",
]

SNP_REPORT_USER_DATA_SIZE = 64
SNP_REPORT_RESP_DATA_SIZE = 4000
PAGE_SIZE = 4096
SEV_FW_BLOB_MAX_SIZE = 0x4000  # the kernel's first guess of a certificate blob (and ours)
MAX_CERTS_LEN = 1 << 20  # refuse to allocate more than this for the host's certificates
MSG_VERSION = 1  # SNP guest message version (the header: "must be non-zero")
VMPL0 = 0

# MSG_REPORT_RSP (SNP ABI Table 25): STATUS u32, REPORT_SIZE u32, 24 reserved bytes, then the report.
MSG_REPORT_RSP_STATUS = 0x00
MSG_REPORT_RSP_REPORT_SIZE = 0x04
MSG_REPORT_RSP_REPORT = 0x20
ATTESTATION_REPORT_SIZE = 0x4A0

# exitinfo2: bits 63:32 VMM error, bits 31:0 firmware error.
SNP_GUEST_VMM_ERR_SHIFT = 32
SNP_GUEST_VMM_ERR_INVALID_LEN = 1
SNP_GUEST_VMM_ERR_BUSY = 2


class snp_report_req(ctypes.Structure):  # noqa: N801 (the kernel's name)
    _fields_ = (
        ("user_data", ctypes.c_uint8 * SNP_REPORT_USER_DATA_SIZE),
        ("vmpl", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint8 * 28),
    )


class snp_report_resp(ctypes.Structure):  # noqa: N801
    _fields_ = (("data", ctypes.c_uint8 * SNP_REPORT_RESP_DATA_SIZE),)


class snp_guest_request_ioctl(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("msg_version", ctypes.c_uint8),
        ("req_data", ctypes.c_uint64),
        ("resp_data", ctypes.c_uint64),
        ("exitinfo2", ctypes.c_uint64),  # union { exitinfo2; struct { fw_error; vmm_error; } }
    )

    @property
    def fw_error(self) -> int:
        return int(self.exitinfo2) & 0xFFFFFFFF

    @property
    def vmm_error(self) -> int:
        return int(self.exitinfo2) >> SNP_GUEST_VMM_ERR_SHIFT


class snp_ext_report_req(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("data", snp_report_req),
        ("certs_address", ctypes.c_uint64),
        ("certs_len", ctypes.c_uint32),
    )


# _IOWR(type, nr, size) (include/uapi/asm-generic/ioctl.h): dir 3 (rw) << 30 | size << 16 | type << 8 | nr
_IOC_READ_WRITE = 3
SNP_GUEST_REQ_IOC_TYPE = ord("S")


def _iowr(nr: int, size: int) -> int:
    return (_IOC_READ_WRITE << 30) | (size << 16) | (SNP_GUEST_REQ_IOC_TYPE << 8) | nr


SNP_GET_REPORT = _iowr(0x0, ctypes.sizeof(snp_guest_request_ioctl))
SNP_GET_EXT_REPORT = _iowr(0x2, ctypes.sizeof(snp_guest_request_ioctl))

# An ioctl(fd, request, arg) that raises OSError on failure (fcntl.ioctl; tests inject a recorded double).
IoctlFn = Callable[[int, int, snp_guest_request_ioctl], object]


def system_ioctl(fd: int, request: int, arg: snp_guest_request_ioctl) -> object:
    return fcntl.ioctl(fd, request, arg, True)


class SevGuestError(Exception):
    """The sev-guest driver or the firmware refused the request."""


def _request(user_data: bytes) -> snp_report_req:
    if len(user_data) != SNP_REPORT_USER_DATA_SIZE:
        raise SevGuestError(f"user_data is {len(user_data)} bytes, expected {SNP_REPORT_USER_DATA_SIZE}")
    req = snp_report_req()
    ctypes.memmove(req.user_data, user_data, SNP_REPORT_USER_DATA_SIZE)
    req.vmpl = VMPL0
    return req


def _report(resp: snp_report_resp) -> bytes:
    data = bytes(resp.data)
    status = int.from_bytes(data[MSG_REPORT_RSP_STATUS : MSG_REPORT_RSP_STATUS + 4], "little")
    size = int.from_bytes(data[MSG_REPORT_RSP_REPORT_SIZE : MSG_REPORT_RSP_REPORT_SIZE + 4], "little")
    if status != 0:
        raise SevGuestError(f"MSG_REPORT_RSP.STATUS is {status:#x}, expected 0 (success)")
    if size != ATTESTATION_REPORT_SIZE:
        raise SevGuestError(f"MSG_REPORT_RSP.REPORT_SIZE is {size}, expected {ATTESTATION_REPORT_SIZE}")
    return data[MSG_REPORT_RSP_REPORT : MSG_REPORT_RSP_REPORT + size]


def get_report(fd: int, user_data: bytes, ioctl: IoctlFn = system_ioctl) -> bytes:
    """SNP_GET_REPORT: the 1184-byte report for this 64-byte REPORT_DATA at VMPL 0."""
    req = _request(user_data)
    resp = snp_report_resp()
    arg = snp_guest_request_ioctl(msg_version=MSG_VERSION, req_data=ctypes.addressof(req))
    arg.resp_data = ctypes.addressof(resp)
    try:
        ioctl(fd, SNP_GET_REPORT, arg)
    except OSError as exc:
        raise SevGuestError(
            f"SNP_GET_REPORT failed: {exc.strerror} (fw_error {arg.fw_error:#x}, vmm_error {arg.vmm_error:#x})"
        ) from exc
    return _report(resp)


def get_ext_report(fd: int, user_data: bytes, ioctl: IoctlFn = system_ioctl) -> tuple[bytes, bytes]:
    """SNP_GET_EXT_REPORT: the report and the host's certificate table. When the buffer is too small the
    kernel fails with vmm_error SNP_GUEST_VMM_ERR_INVALID_LEN and writes the needed size into certs_len; the
    request is retried once with that size."""
    certs_len = SEV_FW_BLOB_MAX_SIZE
    for _attempt in range(2):
        certs = (ctypes.c_uint8 * certs_len)()
        ext = snp_ext_report_req(data=_request(user_data), certs_address=ctypes.addressof(certs))
        ext.certs_len = certs_len
        resp = snp_report_resp()
        arg = snp_guest_request_ioctl(msg_version=MSG_VERSION, req_data=ctypes.addressof(ext))
        arg.resp_data = ctypes.addressof(resp)
        try:
            ioctl(fd, SNP_GET_EXT_REPORT, arg)
        except OSError as exc:
            needed = int(ext.certs_len)
            if arg.vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN and needed > certs_len:
                if needed > MAX_CERTS_LEN or needed % PAGE_SIZE:
                    raise SevGuestError(f"the host asks for a {needed}-byte certificate buffer") from exc
                certs_len = needed
                continue
            raise SevGuestError(
                f"SNP_GET_EXT_REPORT failed: {exc.strerror or errno.errorcode.get(exc.errno or 0)} "
                f"(fw_error {arg.fw_error:#x}, vmm_error {arg.vmm_error:#x})"
            ) from exc
        return _report(resp), bytes(certs)
    raise SevGuestError(f"SNP_GET_EXT_REPORT: certificate buffer still too small at {certs_len} bytes")


# GHCB specification, "SNP Extended Guest Request": a table of {GUID[16], offset u32, length u32} entries
# ended by an all-zero entry; offsets count from the start of the table. GUIDs in RFC 4122 byte order.
CERT_TABLE_ENTRY_SIZE = 24
CERT_TABLE_GUIDS = {
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes: "vcek",
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1").bytes: "vlek",
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782").bytes: "ask",
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae").bytes: "ark",
}


@dataclass(frozen=True)
class CertTable:
    certificates: dict[str, bytes]  # vcek/vlek/ask/ark -> DER
    unknown: tuple[str, ...]  # GUIDs of entries other than those four
    entries: tuple[tuple[bytes, bytes], ...] = ()  # every (GUID, data) in the table's order


def parse_cert_table(table: bytes) -> CertTable:
    certificates: dict[str, bytes] = {}
    unknown = []
    entries = []
    pos = 0
    while True:
        if pos + CERT_TABLE_ENTRY_SIZE > len(table):
            if not table.strip(b"\x00"):
                break  # an empty (all-zero or absent) table
            raise SevGuestError(f"certificate table: entry at {pos} runs past the {len(table)}-byte blob")
        entry = table[pos : pos + CERT_TABLE_ENTRY_SIZE]
        guid = entry[:16]
        offset = int.from_bytes(entry[16:20], "little")
        length = int.from_bytes(entry[20:24], "little")
        if not any(entry):
            break
        if offset + length > len(table) or offset < CERT_TABLE_ENTRY_SIZE:
            raise SevGuestError(
                f"certificate table: entry {uuid.UUID(bytes=guid)} spans {offset}..{offset + length}, "
                f"outside the {len(table)}-byte blob"
            )
        entries.append((guid, table[offset : offset + length]))
        name = CERT_TABLE_GUIDS.get(guid)
        if name is None:
            unknown.append(str(uuid.UUID(bytes=guid)))
        else:
            certificates[name] = table[offset : offset + length]
        pos += CERT_TABLE_ENTRY_SIZE
    return CertTable(certificates=certificates, unknown=tuple(unknown), entries=tuple(entries))
