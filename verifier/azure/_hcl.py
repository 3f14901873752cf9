"""Parse the HCL report of an Azure confidential VM (structure only; nothing here is trusted yet).

Azure's paravisor (the HCL, "host compatibility layer") writes this report into the vTPM NV index 0x01400001.
Layout (little-endian), as the `az-cvm-vtpm` crate and Azure's `SnpVmReport.h` / IGVM attestation headers
define it:

    0x000  ATTESTATION_HEADER (32 bytes)   signature "HCLA", version, report_size, request_type, status,
                                           3 reserved u32
    0x020  hardware report (0x4A0 bytes)   the SNP ATTESTATION_REPORT (0x4A0), or the TDREPORT (0x400)
                                           followed by zero padding: the largest of the two
    0x4C0  IGVM_REQUEST_DATA (20 bytes)    data_size (= 20 + variable_data_size), version, report_type
                                           (2 SNP, 3 reserved "TVM", 4 TDX), report_data_hash_type
                                           (1 SHA-256, 2 SHA-384, 3 SHA-512), variable_data_size
    0x4D4  variable data                   the HCL runtime data: UTF-8 JSON with the vTPM keys as JWKs
                                           ("HCLAkPub", "HCLEkPub"), "vm-configuration", "user-data"

The NV index is larger than the report: bytes after the variable data are padding. The only authenticated parts
are the hardware report (by its signature, or the TD quote that signs the TDREPORT) and the variable data (its
hash is REPORT_DATA[0:digest size], the rest of REPORT_DATA zero): see `runtime_data_report_data`.

>>> import base64, json
>>> from pathlib import Path
>>> doc = json.loads(Path("tests/vectors/azure/az-snp-vtpm/evidence-v1.json").read_text())
>>> report = parse_hcl_report(base64.urlsafe_b64decode(doc["hcl_report"]))
>>> report.report_type, report.hash_name, len(report.runtime_data)
('snp', 'sha256', 1110)
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple

from .._reader import Reader
from ..errors import FormatError, Reason

__all__ = [
    "HCL_REPORT_MAX",
    "HW_REPORT_SIZE",
    "REPORT_TYPES",
    "HclReport",
    "parse_hcl_report",
]

HCL_SIGNATURE = b"HCLA"
HEADER_SIZE = 0x20
# The hardware report area is as large as the largest report it may hold: the SNP ATTESTATION_REPORT.
HW_REPORT_SIZE = 0x4A0
SNP_REPORT_SIZE = 0x4A0
TD_REPORT_SIZE = 0x400  # Intel TDX Module ABI, TDREPORT_STRUCT
IGVM_REQUEST_DATA_OFFSET = HEADER_SIZE + HW_REPORT_SIZE
IGVM_REQUEST_DATA = struct.Struct("<5I")  # data_size, version, report_type, report_data_hash_type, var size
VARIABLE_DATA_OFFSET = IGVM_REQUEST_DATA_OFFSET + IGVM_REQUEST_DATA.size
# A cap before parsing: the vTPM NV index holds 2600 bytes today; the runtime data could grow, not tenfold.
HCL_REPORT_MAX = 32 * 1024

# IGVM_REPORT_TYPE: 2 is SEV-SNP, 4 is TDX; 3 ("TVM", a VBS isolation report) has no public verification.
REPORT_TYPE_SNP = 2
REPORT_TYPE_TDX = 4
REPORT_TYPES = {REPORT_TYPE_SNP: "snp", REPORT_TYPE_TDX: "tdx"}
_HW_REPORT_SIZES = {"snp": SNP_REPORT_SIZE, "tdx": TD_REPORT_SIZE}
# IGVM_HASH_TYPE of report_data_hash_type: how the variable data is hashed into REPORT_DATA.
HASH_TYPES = {1: "sha256", 2: "sha384", 3: "sha512"}

WHAT = "HCL report"


class HclReport(NamedTuple):
    """The parsed report. `hw_report` is the hardware report without padding (0x4A0 bytes for SNP, 0x400 for a
    TDREPORT); `runtime_data` the raw variable data bytes (parsed as JSON only once bound)."""

    version: int
    request_type: int
    report_type: str  # "snp" | "tdx"
    hash_name: str  # how runtime_data is hashed into REPORT_DATA
    hw_report: bytes
    runtime_data: bytes

    def runtime_data_report_data(self) -> bytes:
        """The REPORT_DATA that binds the runtime data, as Azure defines it: its digest with the hash type the
        request names, zero-padded to the 64-byte field."""
        digest = hashlib.new(self.hash_name, self.runtime_data).digest()
        return digest + bytes(64 - len(digest))


def parse_hcl_report(data: bytes) -> HclReport:
    """Header, hardware report and IGVM request data; FormatError (malformed_evidence, or unsupported_format
    for an unknown report or hash type) on anything else."""
    if len(data) > HCL_REPORT_MAX:
        raise FormatError(f"{WHAT} is {len(data)} bytes, at most {HCL_REPORT_MAX} accepted")
    reader = Reader(data, WHAT)
    signature = reader.take(4, "ATTESTATION_HEADER.signature")
    if signature != HCL_SIGNATURE:
        raise FormatError(f"{WHAT}: ATTESTATION_HEADER.signature is {signature.hex()}, expected 'HCLA' (48434c41)")
    version, _report_size, request_type, _status = reader.unpack(
        struct.Struct("<4I"), "ATTESTATION_HEADER version, report_size, request_type, status"
    )
    reader.skip(12, "ATTESTATION_HEADER.reserved")
    hw_area = reader.take(HW_REPORT_SIZE, "hardware report")
    data_size, _request_version, report_type, hash_type, variable_size = reader.unpack(
        IGVM_REQUEST_DATA, "IGVM_REQUEST_DATA"
    )
    kind = REPORT_TYPES.get(report_type)
    if kind is None:
        raise FormatError(
            f"{WHAT}: IGVM_REQUEST_DATA.report_type is {report_type}, expected {REPORT_TYPE_SNP} (SNP) or "
            f"{REPORT_TYPE_TDX} (TDX)",
            Reason.UNSUPPORTED_FORMAT,
        )
    hash_name = HASH_TYPES.get(hash_type)
    if hash_name is None:
        raise FormatError(
            f"{WHAT}: IGVM_REQUEST_DATA.report_data_hash_type is {hash_type}, expected 1 (SHA-256), 2 (SHA-384) "
            "or 3 (SHA-512)",
            Reason.UNSUPPORTED_FORMAT,
        )
    if data_size != IGVM_REQUEST_DATA.size + variable_size:
        raise FormatError(
            f"{WHAT}: IGVM_REQUEST_DATA.data_size is {data_size}, expected {IGVM_REQUEST_DATA.size} + "
            f"variable_data_size {variable_size}"
        )
    runtime_data = reader.take(variable_size, "IGVM_REQUEST_DATA.variable_data")
    hw_size = _HW_REPORT_SIZES[kind]
    if any(hw_area[hw_size:]):
        raise FormatError(f"{WHAT}: the {kind.upper()} hardware report is followed by non-zero padding")
    # Bytes after the variable data are the NV index's unused tail: not part of the report.
    return HclReport(version, request_type, kind, hash_name, hw_area[:hw_size], runtime_data)
