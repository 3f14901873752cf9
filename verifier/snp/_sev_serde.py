"""SNP evidence as guest-components sends it: the `sev` crate's serde JSON, turned back into the report's bytes.

guest-components' SNP attester (attestation-agent/attester/src/snp) sends
`{"attestation_report": <AttestationReport>, "cert_chain": [<CertTableEntry>] | null}`, both serialised by
serde_json from the `sev` crate's types. Two shapes of the report exist:

- sev 6 and later (`key_info` present): the report's fields without its reserved areas. Byte strings are arrays
  of integers of the field's exact length; GUEST_POLICY, PLATFORM_INFO and SIGNER_INFO (`key_info`) are
  integers; TCB_VERSION is `{"fmc", "bootloader", "tee", "snp", "microcode"}`, laid out by product (SNP ABI
  Table "TCB_VERSION": Milan and Genoa have no FMC, so `fmc` is null; Turin has it at byte 0); firmware versions
  are `{"major", "minor", "build"}`; `cpuid_fam_id`, `cpuid_mod_id`, `cpuid_step` are null before report
  version 3 and `launch_mit_vector`, `current_mit_vector` before version 5; `signature` is `{"r", "s"}`, each
  72 bytes little-endian (the ABI's zero-extended P-384 values).
- sev 1 to 5 (`_author_key_en` present): every field of the C struct in order, reserved ones included
  (`_reserved_0` ... `_reserved_4`, TCB_VERSION's `_reserved`, the signature's), firmware versions as
  `current_build`/`current_minor`/`current_major` bytes.

`report_bytes` rebuilds the 1184 bytes exactly as the crate's encoder writes them (the sev 6 shape's reserved
areas are zero), so the report signature is checked over them as over a binary report: a changed value is
`signature_invalid`. Nothing in the JSON escapes the signature: a value that the encoder would drop (`fmc` on a
Milan report, CPUID in a version 2 report), an unknown key or a missing one is refused (`malformed_evidence`,
naming the field) rather than ignored.

`certificate_table` reads `cert_chain`: entries `{"cert_type": "VCEK" | "VLEK" | "ASK" | "ARK" | "CRL" |
"Empty" | {"OTHER": "<uuid>"}, "data": [ints]}` (the GHCB certificate table's GUIDs by name). Under the VLEK,
the ASK entry carries the ASVK, as trustee reads it.

>>> certificate_table([{"cert_type": "VCEK", "data": [48, 3]}, {"cert_type": {"OTHER": str(uuid.UUID(int=1))},
...                     "data": []}])
{'vcek': b'0\\x03'}
>>> certificate_table([{"cert_type": "VCEK", "data": []}, {"cert_type": "VCEK", "data": []}])
Traceback (most recent call last):
...
verifier.errors.FormatError: malformed_evidence: SNP evidence: cert_chain[1].cert_type is 'VCEK' again (also ...
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping, Sequence

from ..errors import FormatError, Reason
from . import _abi

__all__ = ["CERT_TYPES", "certificate_table", "is_sev_serde", "report_bytes"]

_WHAT = "SNP evidence"
_U8, _U32, _U64 = 0xFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF

# cert_type -> the name the rest of the verifier uses (SnpEvidence.certificates); None: accepted, not used.
CERT_TYPES: Mapping[str, str | None] = {"VCEK": "vcek", "VLEK": "vlek", "ASK": "ask", "ARK": "ark", "CRL": None}
_EMPTY = "Empty"
_OTHER = "OTHER"
MAX_CERT_ENTRIES = 16
MAX_CERT_BYTES = 16 * 1024

# Byte-string fields of both shapes: JSON name -> (ABI offset, length).
_BYTE_FIELDS: Mapping[str, tuple[int, int]] = {
    "family_id": (_abi.OFF_FAMILY_ID, _abi.FAMILY_ID_SIZE),
    "image_id": (_abi.OFF_IMAGE_ID, _abi.IMAGE_ID_SIZE),
    "report_data": (_abi.OFF_REPORT_DATA, _abi.REPORT_DATA_SIZE),
    "measurement": (_abi.OFF_MEASUREMENT, _abi.MEASUREMENT_SIZE),
    "host_data": (_abi.OFF_HOST_DATA, _abi.HOST_DATA_SIZE),
    "id_key_digest": (_abi.OFF_ID_KEY_DIGEST, _abi.KEY_DIGEST_SIZE),
    "author_key_digest": (_abi.OFF_AUTHOR_KEY_DIGEST, _abi.KEY_DIGEST_SIZE),
    "report_id": (_abi.OFF_REPORT_ID, _abi.REPORT_ID_SIZE),
    "report_id_ma": (_abi.OFF_REPORT_ID_MA, _abi.REPORT_ID_SIZE),
    "chip_id": (_abi.OFF_CHIP_ID, _abi.CHIP_ID_SIZE),
}
_TCB_FIELDS: Mapping[str, int] = {
    "current_tcb": _abi.OFF_CURRENT_TCB,
    "reported_tcb": _abi.OFF_REPORTED_TCB,
    "committed_tcb": _abi.OFF_COMMITTED_TCB,
    "launch_tcb": _abi.OFF_LAUNCH_TCB,
}
_INT_FIELDS: Mapping[str, tuple[int, str]] = {  # name -> (offset, struct format)
    "version": (_abi.OFF_VERSION, "<I"),
    "guest_svn": (_abi.OFF_GUEST_SVN, "<I"),
    "policy": (_abi.OFF_POLICY, "<Q"),
    "vmpl": (_abi.OFF_VMPL, "<I"),
    "sig_algo": (_abi.OFF_SIGNATURE_ALGO, "<I"),
    "plat_info": (_abi.OFF_PLATFORM_INFO, "<Q"),
}
_CPUID_FIELDS = {
    "cpuid_fam_id": _abi.OFF_CPUID_FAM_ID,
    "cpuid_mod_id": _abi.OFF_CPUID_MOD_ID,
    "cpuid_step": _abi.OFF_CPUID_STEP,
}
_MIT_FIELDS = {"launch_mit_vector": _abi.OFF_LAUNCH_MIT_VECTOR, "current_mit_vector": _abi.OFF_CURRENT_MIT_VECTOR}
_VERSION_FIELDS = {"current": _abi.OFF_CURRENT_BUILD, "committed": _abi.OFF_COMMITTED_BUILD}

# sev >= 6: every key of AttestationReport (src/firmware/guest/types/snp.rs), in the crate's order.
_CURRENT_KEYS = (
    "version", "guest_svn", "policy", "family_id", "image_id", "vmpl", "sig_algo", "current_tcb", "plat_info",
    "key_info", "report_data", "measurement", "host_data", "id_key_digest", "author_key_digest", "report_id",
    "report_id_ma", "reported_tcb", "cpuid_fam_id", "cpuid_mod_id", "cpuid_step", "chip_id", "committed_tcb",
    "current", "committed", "launch_tcb", "launch_mit_vector", "current_mit_vector", "signature",
)  # fmt: skip
_TCB_KEYS = ("fmc", "bootloader", "tee", "snp", "microcode")
_FIRMWARE_VERSION_KEYS = ("major", "minor", "build")
_SIGNATURE_KEYS = ("r", "s")

# sev <= 5: the C struct in order. Each entry: (key, kind, size); kinds: "u32", "u64", "u8", "bytes", "tcb",
# "signature". Offsets follow from the order (the struct is packed as the report is).
_LEGACY_LAYOUT: tuple[tuple[str, str, int], ...] = (
    ("version", "u32", 4), ("guest_svn", "u32", 4), ("policy", "u64", 8), ("family_id", "bytes", 16),
    ("image_id", "bytes", 16), ("vmpl", "u32", 4), ("sig_algo", "u32", 4), ("current_tcb", "tcb", 8),
    ("plat_info", "u64", 8), ("_author_key_en", "u32", 4), ("_reserved_0", "u32", 4), ("report_data", "bytes", 64),
    ("measurement", "bytes", 48), ("host_data", "bytes", 32), ("id_key_digest", "bytes", 48),
    ("author_key_digest", "bytes", 48), ("report_id", "bytes", 32), ("report_id_ma", "bytes", 32),
    ("reported_tcb", "tcb", 8), ("_reserved_1", "bytes", 24), ("chip_id", "bytes", 64), ("committed_tcb", "tcb", 8),
    ("current_build", "u8", 1), ("current_minor", "u8", 1), ("current_major", "u8", 1), ("_reserved_2", "u8", 1),
    ("committed_build", "u8", 1), ("committed_minor", "u8", 1), ("committed_major", "u8", 1),
    ("_reserved_3", "u8", 1), ("launch_tcb", "tcb", 8), ("_reserved_4", "bytes", 168),
    ("signature", "signature", _abi.SIGNATURE_AREA_SIZE),
)  # fmt: skip
_LEGACY_TCB_KEYS = ("bootloader", "tee", "_reserved", "snp", "microcode")
_LEGACY_SIGNATURE_KEYS = ("r", "s", "_reserved")
_TURIN_LIKE_CHIP_ID_TAIL = _abi.CHIP_ID_SIZE - 8  # v2 reports: a Turin chip id is 8 bytes, then zeros
_FAMILY_MILAN_GENOA = 0x19
_FAMILY_TURIN = 0x1A


def _malformed(field: str, detail: str) -> FormatError:
    return FormatError(f"{_WHAT}: {field} {detail}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: object, field: str, keys: Sequence[str]) -> Mapping[str, object]:
    """A JSON object with exactly these keys (serde writes them all; an extra one would not be signed)."""
    if not isinstance(value, dict):  # what json.loads makes (a dict check is much cheaper than Mapping's)
        raise _malformed(field, f"is {_type_name(value)}, expected an object with keys {', '.join(keys)}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise _malformed(field, f"lacks {', '.join(missing)}")
    extra = sorted(str(k) for k in value if k not in keys)
    if extra:
        raise _malformed(field, f"has unknown key(s) {', '.join(extra)}, expected exactly {', '.join(keys)}")
    return value


def _uint(value: object, field: str, maximum: int) -> int:
    # bool is an int in Python, but serde_json never writes true/false for an integer
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(field, f"is {_type_name(value)}, expected an integer 0..{maximum}")
    if not 0 <= value <= maximum:
        raise _malformed(field, f"is {value}, out of range 0..{maximum}")
    return value


def _bytes(value: object, field: str, size: int | None, limit: int | None = None) -> bytes:
    """An array of integers 0..255: serde's encoding of [u8; N] (exactly N) and of Vec<u8>."""
    if not isinstance(value, list):
        expected = f"an array of {size} integers" if size is not None else "an array of integers"
        raise _malformed(field, f"is {_type_name(value)}, expected {expected}")
    if size is not None and len(value) != size:
        raise _malformed(field, f"has {len(value)} elements, expected {size}")
    if limit is not None and len(value) > limit:
        raise _malformed(field, f"has {len(value)} elements, at most {limit} accepted")
    # Fast path in C (a report and its certificates are thousands of elements): only ints (bool is an int to
    # bytes(), not to serde), then bytes() checks the range; the slow loop only finds the culprit's index.
    if set(map(type, value)) <= {int}:
        try:
            return bytes(value)
        except ValueError:
            pass
    for i, item in enumerate(value):
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= _U8:
            raise _malformed(f"{field}[{i}]", f"is {item!r}, expected an integer 0..255")
    raise AssertionError("unreachable: every element was a byte")


def _optional_uint(value: object, field: str, maximum: int, *, present: bool, why: str) -> int:
    """An Option<uN>: an integer when the report version has the field, null when it has not."""
    if not present:
        if value is not None:
            raise _malformed(field, f"is {value!r}, expected null: {why}")
        return 0
    return _uint(value, field, maximum)


def is_sev_serde(report: object) -> bool:
    """Whether `attestation_report` is the sev crate's JSON object (rather than Veritee's earlier base64)."""
    return isinstance(report, Mapping)


def report_bytes(report: object) -> bytes:
    """The ATTESTATION_REPORT bytes of the sev crate's JSON (either shape), exactly as the crate encodes them."""
    if not isinstance(report, Mapping):
        raise _malformed("field attestation_report", f"is {_type_name(report)}, expected an object")
    if "_author_key_en" in report:
        return _legacy_report(report)
    return _current_report(report)


def _turin_layout(obj: Mapping[str, object], version: int) -> bool:
    """Whether the TCB_VERSION fields use Turin's layout, decided as the crate decides it: from report version 3
    on by CPUID_FAM_ID (19h Milan and Genoa, 1Ah Turin); in a version 2 report, a chip id of 8 bytes then zeros is
    Turin's, and an all-zero (masked) one leaves the layout unknown."""
    if version >= _abi.VERSION_WITH_CPUID:
        family = _uint(obj["cpuid_fam_id"], "attestation_report.cpuid_fam_id", _U8)
        if family not in (_FAMILY_MILAN_GENOA, _FAMILY_TURIN):
            raise FormatError(
                f"{_WHAT}: attestation_report.cpuid_fam_id is {family:#x}, expected 0x19 (Milan, Genoa) or 0x1a "
                "(Turin): the TCB_VERSION layout depends on it",
                Reason.UNSUPPORTED_FORMAT,
            )
        return family == _FAMILY_TURIN
    chip_id = _bytes(obj["chip_id"], "attestation_report.chip_id", _abi.CHIP_ID_SIZE)
    if not any(chip_id):
        raise _malformed(
            "attestation_report.chip_id",
            "is all zero in a version 2 report: the TCB_VERSION layout (Turin or not) cannot be told, and the "
            "sev crate refuses such a report (MaskedChipId)",
        )
    return not any(chip_id[-_TURIN_LIKE_CHIP_ID_TAIL:])


def _tcb(value: object, field: str, *, turin: bool) -> bytes:
    """TCB_VERSION (SNP ABI Table "TCB_VERSION"): Milan/Genoa BOOT_LOADER, TEE, 4 reserved, SNP, MICROCODE;
    Turin FMC, BOOT_LOADER, TEE, SNP, 3 reserved, MICROCODE."""
    obj = _object(value, field, _TCB_KEYS)
    bootloader = _uint(obj["bootloader"], f"{field}.bootloader", _U8)
    tee = _uint(obj["tee"], f"{field}.tee", _U8)
    snp = _uint(obj["snp"], f"{field}.snp", _U8)
    microcode = _uint(obj["microcode"], f"{field}.microcode", _U8)
    if turin:
        if obj["fmc"] is None:
            raise _malformed(f"{field}.fmc", "is null, expected an integer 0..255 (a Turin TCB_VERSION has FMC)")
        fmc = _uint(obj["fmc"], f"{field}.fmc", _U8)
        return bytes((fmc, bootloader, tee, snp, 0, 0, 0, microcode))
    if obj["fmc"] is not None:
        raise _malformed(f"{field}.fmc", f"is {obj['fmc']!r}, expected null (a Milan or Genoa TCB_VERSION has no FMC)")
    return bytes((bootloader, tee, 0, 0, 0, 0, snp, microcode))


def _current_report(value: Mapping[str, object]) -> bytes:
    obj = _object(value, "attestation_report", _CURRENT_KEYS)
    out = bytearray(_abi.REPORT_SIZE)
    for name, (offset, fmt) in _INT_FIELDS.items():
        maximum = _U64 if fmt == "<Q" else _U32
        struct.pack_into(fmt, out, offset, _uint(obj[name], f"attestation_report.{name}", maximum))
    version = struct.unpack_from("<I", out, _abi.OFF_VERSION)[0]
    if version < min(_abi.SUPPORTED_VERSIONS):
        raise FormatError(
            f"{_WHAT}: attestation_report.version is {version}, expected one of {_abi.SUPPORTED_VERSIONS}",
            Reason.UNSUPPORTED_FORMAT,
        )
    struct.pack_into("<I", out, _abi.OFF_SIGNER_INFO, _uint(obj["key_info"], "attestation_report.key_info", _U32))
    for name, (offset, size) in _BYTE_FIELDS.items():
        out[offset : offset + size] = _bytes(obj[name], f"attestation_report.{name}", size)
    turin = _turin_layout(obj, version)
    for name, offset in _TCB_FIELDS.items():
        out[offset : offset + 8] = _tcb(obj[name], f"attestation_report.{name}", turin=turin)
    has_cpuid = version >= _abi.VERSION_WITH_CPUID
    for name, offset in _CPUID_FIELDS.items():
        why = f"report version {version} has no CPUID"
        out[offset] = _optional_uint(obj[name], f"attestation_report.{name}", _U8, present=has_cpuid, why=why)
    has_mit = version >= _abi.VERSION_WITH_MIT_VECTOR
    for name, offset in _MIT_FIELDS.items():
        mit = _optional_uint(
            obj[name], f"attestation_report.{name}", _U64, present=has_mit, why=f"report version {version} has none"
        )
        struct.pack_into("<Q", out, offset, mit)
    for name, offset in _VERSION_FIELDS.items():
        field = f"attestation_report.{name}"
        firmware = _object(obj[name], field, _FIRMWARE_VERSION_KEYS)
        # the ABI's order: BUILD, MINOR, MAJOR, then a reserved byte
        out[offset] = _uint(firmware["build"], f"{field}.build", _U8)
        out[offset + 1] = _uint(firmware["minor"], f"{field}.minor", _U8)
        out[offset + 2] = _uint(firmware["major"], f"{field}.major", _U8)
    signature = _object(obj["signature"], "attestation_report.signature", _SIGNATURE_KEYS)
    r = _bytes(signature["r"], "attestation_report.signature.r", _abi.SIGNATURE_COMPONENT_SIZE)
    s = _bytes(signature["s"], "attestation_report.signature.s", _abi.SIGNATURE_COMPONENT_SIZE)
    out[_abi.OFF_SIGNATURE : _abi.OFF_SIGNATURE + len(r)] = r
    out[_abi.OFF_SIGNATURE + len(r) : _abi.OFF_SIGNATURE + len(r) + len(s)] = s
    return bytes(out)


def _legacy_tcb(value: object, field: str) -> bytes:
    obj = _object(value, field, _LEGACY_TCB_KEYS)
    reserved = _bytes(obj["_reserved"], f"{field}._reserved", 4)
    parts = [_uint(obj[k], f"{field}.{k}", _U8) for k in ("bootloader", "tee")]
    tail = [_uint(obj[k], f"{field}.{k}", _U8) for k in ("snp", "microcode")]
    return bytes(parts) + reserved + bytes(tail)


def _legacy_signature(value: object, field: str) -> bytes:
    obj = _object(value, field, _LEGACY_SIGNATURE_KEYS)
    size = _abi.SIGNATURE_COMPONENT_SIZE
    return (
        _bytes(obj["r"], f"{field}.r", size)
        + _bytes(obj["s"], f"{field}.s", size)
        + _bytes(obj["_reserved"], f"{field}._reserved", _abi.SIGNATURE_RESERVED_SIZE)
    )


def _legacy_field(value: object, field: str, kind: str, size: int) -> bytes:
    match kind:
        case "u8":
            return bytes((_uint(value, field, _U8),))
        case "u32":
            return struct.pack("<I", _uint(value, field, _U32))
        case "u64":
            return struct.pack("<Q", _uint(value, field, _U64))
        case "tcb":
            return _legacy_tcb(value, field)
        case "signature":
            return _legacy_signature(value, field)
        case _:
            return _bytes(value, field, size)


def _legacy_report(value: Mapping[str, object]) -> bytes:
    """sev 1 to 5: the C struct's fields in order, so the bytes are their concatenation."""
    obj = _object(value, "attestation_report", tuple(key for key, _, _ in _LEGACY_LAYOUT))
    out = b"".join(
        _legacy_field(obj[key], f"attestation_report.{key}", kind, size) for key, kind, size in _LEGACY_LAYOUT
    )
    if len(out) != _abi.REPORT_SIZE:  # the layout table is wrong, not the input
        raise AssertionError(f"legacy layout makes {len(out)} bytes")
    return out


def _cert_type(value: object, field: str) -> str | None:
    """The verifier's name of a cert_type; None for entries it accepts but does not use (CRL, Empty, OTHER)."""
    if isinstance(value, str):
        if value in CERT_TYPES:
            return CERT_TYPES[value]
        if value == _EMPTY:
            return None
    elif isinstance(value, Mapping) and list(value) == [_OTHER]:
        guid = value[_OTHER]
        try:
            uuid.UUID(guid) if isinstance(guid, str) else uuid.UUID(bytes=b"")
        except ValueError:
            raise _malformed(f"{field}.OTHER", f"is {guid!r}, expected a UUID string") from None
        return None
    known = ", ".join([*CERT_TYPES, _EMPTY, '{"OTHER": "<uuid>"}'])
    raise _malformed(field, f"is {value!r}, expected one of {known}")


def certificate_table(value: object) -> dict[str, bytes]:
    """`cert_chain` (null or a list of CertTableEntry) -> DER by name (vcek, vlek, ask, ark). Each of those
    types at most once: two VCEKs (or two ASKs...) would leave the choice of certificate to the sender."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise _malformed("field cert_chain", f"is {_type_name(value)}, expected an array or null")
    if len(value) > MAX_CERT_ENTRIES:
        raise _malformed("field cert_chain", f"has {len(value)} entries, at most {MAX_CERT_ENTRIES} accepted")
    found: dict[str, bytes] = {}
    where: dict[str, int] = {}
    for i, entry in enumerate(value):
        field = f"cert_chain[{i}]"
        obj = _object(entry, field, ("cert_type", "data"))
        name = _cert_type(obj["cert_type"], f"{field}.cert_type")
        data = _bytes(obj["data"], f"{field}.data", None, MAX_CERT_BYTES)
        if name is None:
            continue
        if name in found:
            raise _malformed(
                f"{field}.cert_type",
                f"is {obj['cert_type']!r} again (also cert_chain[{where[name]}]): at most one certificate of each type",
            )
        found[name], where[name] = data, i
    return found
