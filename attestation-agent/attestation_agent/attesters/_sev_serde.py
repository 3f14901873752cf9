"""SNP evidence in guest-components' shape: the report and the certificate table as the `sev` crate (6 and later)
serialises them with serde_json, so that a trustee KBS (and Veritee's) accepts the agent's evidence unchanged.

The crate decodes the ATTESTATION_REPORT (SEV-SNP ABI, publication 56860, Table 23) field by field, skipping the
reserved areas: byte strings become integer arrays, GUEST_POLICY / PLATFORM_INFO / SIGNER_INFO integers,
TCB_VERSION an object `{"fmc", "bootloader", "tee", "snp", "microcode"}` whose layout follows the product (Turin
has FMC at byte 0; Milan and Genoa have none, `fmc` null), firmware versions `{"major", "minor", "build"}`,
CPUID (report version 3 on) and the mitigation vectors (version 5 on) null when absent, and the signature
`{"r", "s"}` as 72-byte little-endian arrays. The certificate table becomes `[{"cert_type", "data"}]` with the
GHCB GUIDs by name, or null when the host gave none.

>>> report = bytearray(0x4A0); report[0] = 2; report[0x1DF] = 1  # version 2, a CHIP_ID of 64 bytes (not Turin's)
>>> sev_report_json(bytes(report))["reported_tcb"]
{'fmc': None, 'bootloader': 0, 'tee': 0, 'snp': 0, 'microcode': 0}
>>> report[0x1DF] = 0; report[0x1A0] = 1  # 8 bytes then zeros: Turin's, whose TCB_VERSION has FMC
>>> sev_report_json(bytes(report))["reported_tcb"]["fmc"]
0
"""

from __future__ import annotations

import struct
import uuid

__all__ = ["UndecodableReportError", "cert_chain_json", "sev_report_json"]

REPORT_SIZE = 0x4A0
_FAMILY_MILAN_GENOA = 0x19
_FAMILY_TURIN = 0x1A
_CHIP_ID = slice(0x1A0, 0x1E0)

# GHCB specification, "SNP Extended Guest Request": the certificate table's GUIDs, by the crate's CertType name.
CERT_TYPES = {
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae").bytes: "ARK",
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782").bytes: "ASK",
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes: "VCEK",
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1").bytes: "VLEK",
    uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea").bytes: "CRL",
}


class UndecodableReportError(ValueError):
    """A report the crate cannot decode either (unknown product, masked CHIP_ID in a version 2 report)."""


def _turin(report: bytes, version: int) -> bool:
    """The crate's choice of TCB layout: CPUID_FAM_ID from version 3 on; before, a CHIP_ID of 8 bytes then
    zeros is Turin's, and an all-zero one is undecidable."""
    if version >= 3:
        family = report[0x188]
        if family not in (_FAMILY_MILAN_GENOA, _FAMILY_TURIN):
            raise UndecodableReportError(f"CPUID_FAM_ID is {family:#x}, not an SNP product")
        return family == _FAMILY_TURIN
    chip_id = report[_CHIP_ID]
    if not any(chip_id):
        raise UndecodableReportError("a version 2 report with a masked CHIP_ID")
    return not any(chip_id[8:])


def _tcb(raw: bytes, *, turin: bool) -> dict[str, int | None]:
    if turin:
        return {"fmc": raw[0], "bootloader": raw[1], "tee": raw[2], "snp": raw[3], "microcode": raw[7]}
    return {"fmc": None, "bootloader": raw[0], "tee": raw[1], "snp": raw[6], "microcode": raw[7]}


def sev_report_json(report: bytes) -> dict[str, object]:
    """The report as the sev crate's AttestationReport serialises (keys in its order)."""
    if len(report) != REPORT_SIZE:
        raise UndecodableReportError(f"the report is {len(report)} bytes, expected {REPORT_SIZE}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", report, 0x000)
    if version < 2:
        raise UndecodableReportError(f"report version {version}")
    turin = _turin(report, version)
    vmpl, sig_algo = struct.unpack_from("<II", report, 0x030)
    plat_info, key_info = struct.unpack_from("<QI", report, 0x040)

    def arr(offset: int, size: int) -> list[int]:
        return list(report[offset : offset + size])

    def tcb(offset: int) -> dict[str, int | None]:
        return _tcb(report[offset : offset + 8], turin=turin)

    def firmware(offset: int) -> dict[str, int]:
        build, minor, major = report[offset : offset + 3]
        return {"major": major, "minor": minor, "build": build}

    has_cpuid, has_mit = version >= 3, version >= 5
    launch_mit, current_mit = struct.unpack_from("<QQ", report, 0x1F8)
    return {
        "version": version,
        "guest_svn": guest_svn,
        "policy": policy,
        "family_id": arr(0x010, 16),
        "image_id": arr(0x020, 16),
        "vmpl": vmpl,
        "sig_algo": sig_algo,
        "current_tcb": tcb(0x038),
        "plat_info": plat_info,
        "key_info": key_info,
        "report_data": arr(0x050, 64),
        "measurement": arr(0x090, 48),
        "host_data": arr(0x0C0, 32),
        "id_key_digest": arr(0x0E0, 48),
        "author_key_digest": arr(0x110, 48),
        "report_id": arr(0x140, 32),
        "report_id_ma": arr(0x160, 32),
        "reported_tcb": tcb(0x180),
        "cpuid_fam_id": report[0x188] if has_cpuid else None,
        "cpuid_mod_id": report[0x189] if has_cpuid else None,
        "cpuid_step": report[0x18A] if has_cpuid else None,
        "chip_id": arr(0x1A0, 64),
        "committed_tcb": tcb(0x1E0),
        "current": firmware(0x1E8),
        "committed": firmware(0x1EC),
        "launch_tcb": tcb(0x1F0),
        "launch_mit_vector": launch_mit if has_mit else None,
        "current_mit_vector": current_mit if has_mit else None,
        "signature": {"r": arr(0x2A0, 72), "s": arr(0x2E8, 72)},
    }


def cert_chain_json(entries: list[tuple[bytes, bytes]]) -> list[dict[str, object]] | None:
    """The certificate table's (GUID, data) entries in order as CertTableEntry JSON; None when there are none."""
    if not entries:
        return None
    out: list[dict[str, object]] = []
    for guid, data in entries:
        name = CERT_TYPES.get(guid)
        cert_type: object = name if name is not None else {"OTHER": str(uuid.UUID(bytes=guid))}
        out.append({"cert_type": cert_type, "data": list(data)})
    return out
