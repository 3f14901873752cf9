"""The TDREPORT in an Azure TDX HCL report, checked against the TD quote made from it.

The TDREPORT carries only a MAC that the platform can check, so the verifier trusts none of it directly: the
Quoting Enclave signs its content in the TD quote. Azure's attester gets the quote for exactly this TDREPORT, so
every field the quote carries must be equal, and the two hashes in REPORTMACSTRUCT must be those of the
TEE_TCB_INFO and TDINFO they cover (so no byte of either can differ unnoticed).

Layout: Intel TDX Module ABI specification, TDREPORT_STRUCT (1024 bytes):

    0x000 REPORTMACSTRUCT (256)  REPORTTYPE (4: TYPE 0x81 = TDX, SUBTYPE, VERSION, reserved), reserved (12),
                                 CPUSVN (16), TEE_TCB_INFO_HASH (48) @0x20, TEE_INFO_HASH (48) @0x50,
                                 REPORTDATA (64) @0x80, reserved (32), MAC (32)
    0x100 TEE_TCB_INFO (239)     VALID (8), TEE_TCB_SVN (16) @0x108, MRSEAM (48) @0x118, MRSIGNERSEAM (48)
                                 @0x148, ATTRIBUTES (8) @0x178, TEE_TCB_SVN2 (16, TDX 1.5) @0x180, reserved
    0x1EF reserved (17)
    0x200 TDINFO_STRUCT (512)    ATTRIBUTES (8), XFAM (8) @0x208, MRTD (48) @0x210, MRCONFIGID (48) @0x240,
                                 MROWNER (48) @0x270, MROWNERCONFIG (48) @0x2A0, RTMR[0..3] (4 x 48) @0x2D0,
                                 SERVTD_HASH (48) @0x390, reserved (64)
"""

from __future__ import annotations

import hashlib

from ..errors import FormatError, Reason, VerificationError
from ..tdx import Quote

__all__ = ["check_td_report"]

TD_REPORT_SIZE = 0x400
REPORT_TYPE_TDX = 0x81
OFF_TEE_TCB_INFO_HASH = 0x20
OFF_TEE_INFO_HASH = 0x50
HASH_SIZE = 48
TEE_TCB_INFO = (0x100, 0x100 + 239)
TDINFO = (0x200, 0x400)
# Field name -> (offset, size) in the TDREPORT; each is compared with the quote body's field of that name.
FIELDS: dict[str, tuple[int, int]] = {
    "REPORTDATA": (0x80, 64),
    "TEE_TCB_SVN": (0x108, 16),
    "MRSEAM": (0x118, 48),
    "MRSIGNERSEAM": (0x148, 48),
    "SEAMATTRIBUTES": (0x178, 8),
    "TDATTRIBUTES": (0x200, 8),
    "XFAM": (0x208, 8),
    "MRTD": (0x210, 48),
    "MRCONFIGID": (0x240, 48),
    "MROWNER": (0x270, 48),
    "MROWNERCONFIG": (0x2A0, 48),
    "RTMR0": (0x2D0, 48),
    "RTMR1": (0x300, 48),
    "RTMR2": (0x330, 48),
    "RTMR3": (0x360, 48),
}


def _quoted(quote: Quote) -> dict[str, bytes]:
    body = quote.body
    rtmrs = {f"RTMR{i}": value for i, value in enumerate(body.rtmr)}
    return {
        "REPORTDATA": body.report_data,
        "TEE_TCB_SVN": body.tee_tcb_svn,
        "MRSEAM": body.mr_seam,
        "MRSIGNERSEAM": body.mr_signer_seam,
        "SEAMATTRIBUTES": body.seam_attributes,
        "TDATTRIBUTES": body.td_attributes,
        "XFAM": body.xfam,
        "MRTD": body.mr_td,
        "MRCONFIGID": body.mr_config_id,
        "MROWNER": body.mr_owner,
        "MROWNERCONFIG": body.mr_owner_config,
        **rtmrs,
    }


def check_td_report(td_report: bytes, quote: Quote) -> None:
    """Raise signature_invalid when the TDREPORT is not the one the (verified) quote signs."""
    if len(td_report) != TD_REPORT_SIZE:
        raise FormatError(f"TDREPORT is {len(td_report)} bytes, expected {TD_REPORT_SIZE}")
    if td_report[0] != REPORT_TYPE_TDX:
        raise FormatError(
            f"TDREPORT REPORTTYPE.TYPE is {td_report[0]:#04x}, expected {REPORT_TYPE_TDX:#04x} (TDX)",
            Reason.UNSUPPORTED_FORMAT,
        )
    quoted = _quoted(quote)
    for name, (offset, size) in FIELDS.items():
        carried = td_report[offset : offset + size]
        if carried != quoted[name]:
            raise VerificationError(
                Reason.SIGNATURE_INVALID,
                f"HCL report TDREPORT {name} is {carried.hex()}, the signed TD quote's is {quoted[name].hex()}: "
                "the TDREPORT is not the one the quote signs",
            )
    for name, (start, end), offset in (
        ("TEE_TCB_INFO_HASH", TEE_TCB_INFO, OFF_TEE_TCB_INFO_HASH),
        ("TEE_INFO_HASH", TDINFO, OFF_TEE_INFO_HASH),
    ):
        carried = td_report[offset : offset + HASH_SIZE]
        computed = hashlib.sha384(td_report[start:end]).digest()
        if carried != computed:
            raise VerificationError(
                Reason.SIGNATURE_INVALID,
                f"TDREPORT {name} is {carried.hex()}, but the structure it covers hashes to {computed.hex()}",
            )
