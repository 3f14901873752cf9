"""Parse the SEV-SNP ATTESTATION_REPORT (structure only; no signatures). The evidence JSON is `_evidence`'s.

Layout: AMD SEV Secure Nested Paging Firmware ABI Specification (publication 56860), Table 23
"ATTESTATION_REPORT Structure" (report versions 2, 3 and 5), Table "TCB_VERSION Structure" (the Turin layout
with FMC in the rev. 1.58 table), Table "GUEST_POLICY", Table "PLATFORM_INFO". The report is 0x4A0 bytes; the
signature (Table "ECDSA P-384 with SHA-384 Signature") covers bytes 0x000..0x29F.

>>> from pathlib import Path
>>> vectors = Path(__file__).parents[2] / "tests/vectors"
>>> report = parse_report((vectors / "snp/go-sev-guest/attestation.bin").read_bytes())
>>> report.version, report.policy.debug
(2, True)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .._reader import Reader
from ..errors import FormatError, Reason

__all__ = [
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "AttestationReport",
    "Cpuid",
    "FirmwareVersion",
    "GuestPolicy",
    "PlatformInfo",
    "SigningKey",
    "Tcb",
    "decode_tcb",
    "parse_report",
    "signature_parts",
]

# ATTESTATION_REPORT (Table 23): offsets and sizes.
REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0  # the signature covers bytes 0x000..0x29F
OFF_VERSION = 0x000  # u32
OFF_GUEST_SVN = 0x004  # u32
OFF_POLICY = 0x008  # u64
OFF_FAMILY_ID = 0x010
FAMILY_ID_SIZE = 16
OFF_IMAGE_ID = 0x020
IMAGE_ID_SIZE = 16
OFF_VMPL = 0x030  # u32
OFF_SIGNATURE_ALGO = 0x034  # u32
OFF_CURRENT_TCB = 0x038  # u64 TCB_VERSION
OFF_PLATFORM_INFO = 0x040  # u64
OFF_SIGNER_INFO = 0x048  # u32: AUTHOR_KEY_EN bit 0, MASK_CHIP_KEY bit 1, SIGNING_KEY bits 4:2
OFF_RESERVED_04C = 0x04C  # 4 bytes, must be zero
OFF_REPORT_DATA = 0x050
REPORT_DATA_SIZE = 64
OFF_MEASUREMENT = 0x090
MEASUREMENT_SIZE = 48
OFF_HOST_DATA = 0x0C0
HOST_DATA_SIZE = 32
OFF_ID_KEY_DIGEST = 0x0E0
OFF_AUTHOR_KEY_DIGEST = 0x110
KEY_DIGEST_SIZE = 48
OFF_REPORT_ID = 0x140
OFF_REPORT_ID_MA = 0x160
REPORT_ID_SIZE = 32
OFF_REPORTED_TCB = 0x180  # u64 TCB_VERSION
OFF_CPUID_FAM_ID = 0x188  # u8, version >= 3 (reserved in version 2)
OFF_CPUID_MOD_ID = 0x189  # u8, version >= 3
OFF_CPUID_STEP = 0x18A  # u8, version >= 3
OFF_RESERVED_18B = 0x18B  # through 0x19F, must be zero
OFF_CHIP_ID = 0x1A0
CHIP_ID_SIZE = 64
OFF_COMMITTED_TCB = 0x1E0  # u64 TCB_VERSION
OFF_CURRENT_BUILD = 0x1E8  # u8 CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR, then 1 reserved byte
OFF_COMMITTED_BUILD = 0x1EC  # u8 COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR, then 1 reserved byte
OFF_LAUNCH_TCB = 0x1F0  # u64 TCB_VERSION
OFF_LAUNCH_MIT_VECTOR = 0x1F8  # u64, version >= 5 (reserved before)
OFF_CURRENT_MIT_VECTOR = 0x200  # u64, version >= 5 (reserved before)
OFF_SIGNATURE = 0x2A0  # 512-byte signature area
# Signature (Table "ECDSA P-384 with SHA-384 Signature"): R and S as 72-byte little-endian integers, zero
# extended from the 48-byte P-384 values, then reserved bytes up to the end of the 512-byte area.
SIGNATURE_AREA_SIZE = 0x200
SIGNATURE_COMPONENT_SIZE = 72
P384_COMPONENT_SIZE = 48
SIGNATURE_RESERVED_SIZE = SIGNATURE_AREA_SIZE - 2 * SIGNATURE_COMPONENT_SIZE

SUPPORTED_VERSIONS = (2, 3, 5)
VERSION_WITH_CPUID = 3
VERSION_WITH_MIT_VECTOR = 5
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1

# GUEST_POLICY bits (Table 9).
POLICY_ABI_MINOR_MASK = 0xFF
POLICY_ABI_MAJOR_SHIFT = 8
POLICY_SMT = 1 << 16
POLICY_RESERVED_MBO = 1 << 17  # must be one
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20
POLICY_CXL_ALLOW = 1 << 21
POLICY_MEM_AES_256_XTS = 1 << 22
POLICY_RAPL_DIS = 1 << 23
POLICY_CIPHERTEXT_HIDING = 1 << 24
POLICY_PAGE_SWAP_DISABLE = 1 << 25

# PLATFORM_INFO bits (Table 24).
PLATFORM_SMT_EN = 1 << 0
PLATFORM_TSME_EN = 1 << 1
PLATFORM_ECC_EN = 1 << 2
PLATFORM_RAPL_DIS = 1 << 3
PLATFORM_CIPHERTEXT_HIDING_EN = 1 << 4
PLATFORM_ALIAS_CHECK_COMPLETE = 1 << 5

# SIGNER_INFO bits.
SIGNER_AUTHOR_KEY_EN = 1 << 0
SIGNER_MASK_CHIP_KEY = 1 << 1
SIGNER_SIGNING_KEY_SHIFT = 2
SIGNER_SIGNING_KEY_MASK = 0b111
SIGNER_RESERVED_MASK = ~0b11111 & 0xFFFFFFFF


class SigningKey(enum.IntEnum):
    """SIGNER_INFO.SIGNING_KEY: which key signed the report."""

    VCEK = 0
    VLEK = 1
    NONE = 7


@dataclass(frozen=True)
class Tcb:
    """A decoded TCB_VERSION. Milan/Genoa: BOOT_LOADER byte 0, TEE byte 1, SNP byte 6, MICROCODE byte 7.
    Turin: FMC byte 0, BOOT_LOADER byte 1, TEE byte 2, SNP byte 3, MICROCODE byte 7."""

    raw: int
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None


def decode_tcb(raw: int, *, turin: bool) -> Tcb:
    b = raw.to_bytes(8, "little")
    if turin:
        return Tcb(raw=raw, fmc=b[0], bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7])
    return Tcb(raw=raw, bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])


@dataclass(frozen=True)
class GuestPolicy:
    raw: int

    @property
    def abi_minor(self) -> int:
        return self.raw & POLICY_ABI_MINOR_MASK

    @property
    def abi_major(self) -> int:
        return (self.raw >> POLICY_ABI_MAJOR_SHIFT) & 0xFF

    @property
    def smt_allowed(self) -> bool:
        return bool(self.raw & POLICY_SMT)

    @property
    def migrate_ma(self) -> bool:
        return bool(self.raw & POLICY_MIGRATE_MA)

    @property
    def debug(self) -> bool:
        return bool(self.raw & POLICY_DEBUG)

    @property
    def single_socket(self) -> bool:
        return bool(self.raw & POLICY_SINGLE_SOCKET)


@dataclass(frozen=True)
class PlatformInfo:
    raw: int

    @property
    def smt_enabled(self) -> bool:
        return bool(self.raw & PLATFORM_SMT_EN)

    @property
    def tsme_enabled(self) -> bool:
        return bool(self.raw & PLATFORM_TSME_EN)

    @property
    def ecc_enabled(self) -> bool:
        return bool(self.raw & PLATFORM_ECC_EN)


@dataclass(frozen=True)
class Cpuid:
    """CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (report version 3 and later): the combined family and model."""

    family: int
    model: int
    stepping: int


@dataclass(frozen=True)
class FirmwareVersion:
    major: int
    minor: int
    build: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}"


@dataclass(frozen=True)
class AttestationReport:
    """The ATTESTATION_REPORT fields. TCB_VERSION values stay raw until the product (and layout) is known."""

    version: int
    guest_svn: int
    policy: GuestPolicy
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: PlatformInfo
    author_key_en: bool
    mask_chip_key: bool
    signing_key: SigningKey
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid: Cpuid | None
    chip_id: bytes
    committed_tcb: int
    current_version: FirmwareVersion
    committed_version: FirmwareVersion
    launch_tcb: int
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    signed_bytes: bytes


def _firmware_version(r: Reader, prefix: str) -> FirmwareVersion:
    build = r.u8(f"{prefix}_BUILD")
    minor = r.u8(f"{prefix}_MINOR")
    major = r.u8(f"{prefix}_MAJOR")
    r.must_be_zero(1, f"reserved after {prefix}_MAJOR")
    return FirmwareVersion(major=major, minor=minor, build=build)


def _signature_component(r: Reader, field: str) -> int:
    raw = r.take(SIGNATURE_COMPONENT_SIZE, field)
    if any(raw[P384_COMPONENT_SIZE:]):
        raise FormatError(
            f"ATTESTATION_REPORT: SIGNATURE.{field} bytes 48..71 are {raw[P384_COMPONENT_SIZE:].hex()}, "
            "expected zero (a P-384 value zero-extended to 72 bytes)"
        )
    return int.from_bytes(raw, "little")


def signature_parts(data: bytes) -> tuple[bytes, int, int]:
    """The signed bytes (0x000..0x29F) and the R and S integers, read before the report is trusted: the
    signature is checked over the raw bytes first, so that no field of an unauthenticated report is
    interpreted (a flipped byte anywhere in the signed area is a signature failure, not a format one)."""
    check_size(data)
    component = slice(OFF_SIGNATURE, OFF_SIGNATURE + SIGNATURE_COMPONENT_SIZE)
    r = int.from_bytes(data[component], "little")
    s_start = OFF_SIGNATURE + SIGNATURE_COMPONENT_SIZE
    s = int.from_bytes(data[s_start : s_start + SIGNATURE_COMPONENT_SIZE], "little")
    return bytes(data[:SIGNED_SIZE]), r, s


def check_size(data: bytes) -> None:
    if len(data) != REPORT_SIZE:
        raise FormatError(f"ATTESTATION_REPORT is {len(data)} bytes, expected {REPORT_SIZE} (0x4A0)")


def parse_report(data: bytes) -> AttestationReport:
    """Parse and structurally check an ATTESTATION_REPORT: exact size, supported version and signature
    algorithm, must-be-zero reserved areas. Raises FormatError only."""
    check_size(data)
    r = Reader(data, "ATTESTATION_REPORT")
    version = r.u32le("VERSION")
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(
            f"ATTESTATION_REPORT: VERSION is {version}, expected one of {SUPPORTED_VERSIONS}",
            Reason.UNSUPPORTED_FORMAT,
        )
    guest_svn = r.u32le("GUEST_SVN")
    policy = GuestPolicy(r.u64le("POLICY"))
    if not policy.raw & POLICY_RESERVED_MBO:
        raise FormatError(f"ATTESTATION_REPORT: POLICY is {policy.raw:#x}, bit 17 (reserved) must be one")
    family_id = r.take(FAMILY_ID_SIZE, "FAMILY_ID")
    image_id = r.take(IMAGE_ID_SIZE, "IMAGE_ID")
    vmpl = r.u32le("VMPL")
    signature_algo = r.u32le("SIGNATURE_ALGO")
    if signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise FormatError(
            f"ATTESTATION_REPORT: SIGNATURE_ALGO is {signature_algo}, expected 1 (ECDSA P-384 with SHA-384)",
            Reason.UNSUPPORTED_FORMAT,
        )
    current_tcb = r.u64le("CURRENT_TCB")
    platform_info = PlatformInfo(r.u64le("PLATFORM_INFO"))
    signer_info = r.u32le("SIGNER_INFO")
    if signer_info & SIGNER_RESERVED_MASK:
        raise FormatError(f"ATTESTATION_REPORT: SIGNER_INFO is {signer_info:#x}, bits 31:5 must be zero")
    key_bits = (signer_info >> SIGNER_SIGNING_KEY_SHIFT) & SIGNER_SIGNING_KEY_MASK
    try:
        signing_key = SigningKey(key_bits)
    except ValueError:
        raise FormatError(
            f"ATTESTATION_REPORT: SIGNER_INFO.SIGNING_KEY is {key_bits}, expected 0 (VCEK), 1 (VLEK) or 7 (none)"
        ) from None
    r.must_be_zero(4, "reserved at 0x04C")
    report_data = r.take(REPORT_DATA_SIZE, "REPORT_DATA")
    measurement = r.take(MEASUREMENT_SIZE, "MEASUREMENT")
    host_data = r.take(HOST_DATA_SIZE, "HOST_DATA")
    id_key_digest = r.take(KEY_DIGEST_SIZE, "ID_KEY_DIGEST")
    author_key_digest = r.take(KEY_DIGEST_SIZE, "AUTHOR_KEY_DIGEST")
    report_id = r.take(REPORT_ID_SIZE, "REPORT_ID")
    report_id_ma = r.take(REPORT_ID_SIZE, "REPORT_ID_MA")
    reported_tcb = r.u64le("REPORTED_TCB")
    cpuid: Cpuid | None = None
    if version >= VERSION_WITH_CPUID:
        cpuid = Cpuid(family=r.u8("CPUID_FAM_ID"), model=r.u8("CPUID_MOD_ID"), stepping=r.u8("CPUID_STEP"))
        r.must_be_zero(OFF_CHIP_ID - OFF_RESERVED_18B, "reserved at 0x18B")
    else:
        r.must_be_zero(OFF_CHIP_ID - OFF_CPUID_FAM_ID, "reserved at 0x188")
    chip_id = r.take(CHIP_ID_SIZE, "CHIP_ID")
    committed_tcb = r.u64le("COMMITTED_TCB")
    current_version = _firmware_version(r, "CURRENT")
    committed_version = _firmware_version(r, "COMMITTED")
    launch_tcb = r.u64le("LAUNCH_TCB")
    launch_mit: int | None = None
    current_mit: int | None = None
    if version >= VERSION_WITH_MIT_VECTOR:
        launch_mit = r.u64le("LAUNCH_MIT_VECTOR")
        current_mit = r.u64le("CURRENT_MIT_VECTOR")
    r.must_be_zero(OFF_SIGNATURE - r.offset, f"reserved at {r.offset:#x}")
    signature_r = _signature_component(r, "R")
    signature_s = _signature_component(r, "S")
    r.must_be_zero(SIGNATURE_RESERVED_SIZE, "SIGNATURE reserved")
    r.finish()
    return AttestationReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=family_id,
        image_id=image_id,
        vmpl=vmpl,
        signature_algo=signature_algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        author_key_en=bool(signer_info & SIGNER_AUTHOR_KEY_EN),
        mask_chip_key=bool(signer_info & SIGNER_MASK_CHIP_KEY),
        signing_key=signing_key,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=id_key_digest,
        author_key_digest=author_key_digest,
        report_id=report_id,
        report_id_ma=report_id_ma,
        reported_tcb=reported_tcb,
        cpuid=cpuid,
        chip_id=chip_id,
        committed_tcb=committed_tcb,
        current_version=current_version,
        committed_version=committed_version,
        launch_tcb=launch_tcb,
        launch_mit_vector=launch_mit,
        current_mit_vector=current_mit,
        signature_r=signature_r,
        signature_s=signature_s,
        signed_bytes=bytes(data[:SIGNED_SIZE]),
    )
