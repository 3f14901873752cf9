"""A test-only serialiser: an ATTESTATION_REPORT and its certificates as the `sev` crate's serde JSON, the way
guest-components' SNP attester sends them. Written from the crate's definitions, independently of the verifier's
parser (verifier/snp/_sev_serde.py), so that tests compare two readings of the same source:

- sev 6 / 7 (`AttestationReport::from_bytes` / `Decoder`, src/firmware/guest/types/snp.rs): the report variant
  from VERSION (2 -> V2, 3|4 -> V3, other -> V5); the generation from CPUID_FAM_ID/CPUID_MOD_ID
  (`Generation::identify_cpu`), or for V2 from CHIP_ID (all zero: error MaskedChipId; bytes 8.. zero: Turin);
  TcbVersion `from_legacy_bytes` ([bl, tee, _, _, _, _, snp, ucode], fmc None) or `from_turin_bytes`
  ([fmc, bl, tee, snp, _, _, _, ucode]); Version from [build, minor, major]; reserved areas skipped; the
  bitfield newtypes (GuestPolicy, PlatformInfo, KeyInfo) serialise as their integer; `[u8; N]` and
  `serde_big_array` as arrays; `Option` as null; Signature as `{"r", "s"}` (src/certs/snp/ecdsa/mod.rs).
- sev 1 to 5: `#[repr(C)]` struct fields in order with their reserved ones (`_author_key_en`, `_reserved_0`
  ... `_reserved_4`, TcbVersion `_reserved`, Signature `_reserved`).
- CertTableEntry `{"cert_type", "data"}`, CertType an externally tagged enum: "ARK", "ASK", "VCEK", "VLEK",
  "CRL", "Empty", or {"OTHER": "<uuid>"} (src/firmware/host/types/snp.rs).
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["cert_entry", "sev_json", "sev_json_legacy"]


def _u32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def _u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])


def _arr(data: bytes, offset: int, size: int) -> list[int]:
    return list(data[offset : offset + size])


def _generation(data: bytes, version: int) -> str:
    if version == 2:
        chip_id = data[0x1A0:0x1E0]
        if chip_id == bytes(64):
            raise ValueError("MaskedChipId: the sev crate cannot decode a version 2 report with a zero chip id")
        return "Turin" if chip_id[8:] == bytes(56) else "Genoa"
    family, model = data[0x188], data[0x189]
    if family == 0x19 and model <= 0x0F:
        return "Milan"
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return "Genoa"
    if family == 0x1A and model <= 0x11:
        return "Turin"
    raise ValueError(f"processor is not of a known SEV-SNP model: {family:#x}/{model:#x}")


def _tcb(data: bytes, offset: int, generation: str) -> dict[str, Any]:
    b = data[offset : offset + 8]
    if generation == "Turin":
        return {"fmc": b[0], "bootloader": b[1], "tee": b[2], "snp": b[3], "microcode": b[7]}
    return {"fmc": None, "bootloader": b[0], "tee": b[1], "snp": b[6], "microcode": b[7]}


def _version(data: bytes, offset: int) -> dict[str, int]:
    build, minor, major = data[offset : offset + 3]
    return {"major": major, "minor": minor, "build": build}


def sev_json(data: bytes) -> dict[str, Any]:
    """The report as sev 6/7 serialises it (keys in the struct's order, as serde_json writes them)."""
    assert len(data) == 1184
    version = _u32(data, 0x000)
    if version in (0, 1):
        raise ValueError("Unsupported report version")
    variant = "V2" if version == 2 else "V3" if version in (3, 4) else "V5"
    generation = _generation(data, version)
    return {
        "version": version,
        "guest_svn": _u32(data, 0x004),
        "policy": _u64(data, 0x008),
        "family_id": _arr(data, 0x010, 16),
        "image_id": _arr(data, 0x020, 16),
        "vmpl": _u32(data, 0x030),
        "sig_algo": _u32(data, 0x034),
        "current_tcb": _tcb(data, 0x038, generation),
        "plat_info": _u64(data, 0x040),
        "key_info": _u32(data, 0x048),
        "report_data": _arr(data, 0x050, 64),
        "measurement": _arr(data, 0x090, 48),
        "host_data": _arr(data, 0x0C0, 32),
        "id_key_digest": _arr(data, 0x0E0, 48),
        "author_key_digest": _arr(data, 0x110, 48),
        "report_id": _arr(data, 0x140, 32),
        "report_id_ma": _arr(data, 0x160, 32),
        "reported_tcb": _tcb(data, 0x180, generation),
        "cpuid_fam_id": None if variant == "V2" else data[0x188],
        "cpuid_mod_id": None if variant == "V2" else data[0x189],
        "cpuid_step": None if variant == "V2" else data[0x18A],
        "chip_id": _arr(data, 0x1A0, 64),
        "committed_tcb": _tcb(data, 0x1E0, generation),
        "current": _version(data, 0x1E8),
        "committed": _version(data, 0x1EC),
        "launch_tcb": _tcb(data, 0x1F0, generation),
        "launch_mit_vector": _u64(data, 0x1F8) if variant == "V5" else None,
        "current_mit_vector": _u64(data, 0x200) if variant == "V5" else None,
        "signature": {"r": _arr(data, 0x2A0, 72), "s": _arr(data, 0x2E8, 72)},
    }


def _legacy_tcb(data: bytes, offset: int) -> dict[str, Any]:
    b = data[offset : offset + 8]
    return {"bootloader": b[0], "tee": b[1], "_reserved": list(b[2:6]), "snp": b[6], "microcode": b[7]}


def sev_json_legacy(data: bytes) -> dict[str, Any]:
    """The report as sev 1 to 5 serialise it: the C struct, reserved fields included."""
    assert len(data) == 1184
    return {
        "version": _u32(data, 0x000),
        "guest_svn": _u32(data, 0x004),
        "policy": _u64(data, 0x008),
        "family_id": _arr(data, 0x010, 16),
        "image_id": _arr(data, 0x020, 16),
        "vmpl": _u32(data, 0x030),
        "sig_algo": _u32(data, 0x034),
        "current_tcb": _legacy_tcb(data, 0x038),
        "plat_info": _u64(data, 0x040),
        "_author_key_en": _u32(data, 0x048),
        "_reserved_0": _u32(data, 0x04C),
        "report_data": _arr(data, 0x050, 64),
        "measurement": _arr(data, 0x090, 48),
        "host_data": _arr(data, 0x0C0, 32),
        "id_key_digest": _arr(data, 0x0E0, 48),
        "author_key_digest": _arr(data, 0x110, 48),
        "report_id": _arr(data, 0x140, 32),
        "report_id_ma": _arr(data, 0x160, 32),
        "reported_tcb": _legacy_tcb(data, 0x180),
        "_reserved_1": _arr(data, 0x188, 24),
        "chip_id": _arr(data, 0x1A0, 64),
        "committed_tcb": _legacy_tcb(data, 0x1E0),
        "current_build": data[0x1E8],
        "current_minor": data[0x1E9],
        "current_major": data[0x1EA],
        "_reserved_2": data[0x1EB],
        "committed_build": data[0x1EC],
        "committed_minor": data[0x1ED],
        "committed_major": data[0x1EE],
        "_reserved_3": data[0x1EF],
        "launch_tcb": _legacy_tcb(data, 0x1F0),
        "_reserved_4": _arr(data, 0x1F8, 168),
        "signature": {"r": _arr(data, 0x2A0, 72), "s": _arr(data, 0x2E8, 72), "_reserved": _arr(data, 0x330, 368)},
    }


def cert_entry(cert_type: str | dict[str, str], der: bytes) -> dict[str, Any]:
    return {"cert_type": cert_type, "data": list(der)}
