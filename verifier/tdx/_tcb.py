"""Intel's TCB status evaluation for a TDX quote: TCB levels, TDX module identities and the QE identity.

[TCBINFO] "TDX TCB Info" v3, section "TCB level matching" (also Intel's QVL, TdxVerification and
QuoteVerification/TcbLevelCheck): walk tcbLevels in order (they are sorted, newest first) and take the first
one where
  1. every SGX TCB component SVN of the PCK certificate >= sgxtcbcomponents[i].svn, and PCESVN >= pcesvn;
  2. every TEE_TCB_SVN[i] of the TD report >= tdxtcbcomponents[i].svn, skipping i = 0 and 1 when
     TEE_TCB_SVN[1] (the TDX module major version) is not 0: the module is then judged by tdxModuleIdentities.
No level matching is tcb_not_supported. The module identity "TDX_<major:02d>" must match MRSIGNERSEAM and
SEAMATTRIBUTES (under the mask); its level is the first whose isvsvn <= TEE_TCB_SVN[0]. The QE identity must
match MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES (under masks); its level is the first with
isvsvn <= ISVSVN.
The platform status is then converged with the module's and the QE's (QVL "convergeTcbStatus...").
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Reason, VerificationError
from ._collateral import EnclaveIdentity, ModuleIdentity, QeTcbLevel, TcbInfo, TcbLevel
from ._pck import PckExtensions
from ._quote import QeReport

__all__ = ["STATUSES", "TcbVerdict", "TdTcb", "evaluate_tcb", "match_qe_identity"]

# [TCBINFO] tcbStatus values (the tcb_status claim of docs/evidence.md).
UP_TO_DATE = "UpToDate"
SW_HARDENING = "SWHardeningNeeded"
CONFIG_NEEDED = "ConfigurationNeeded"
CONFIG_AND_SW = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE = "OutOfDate"
OUT_OF_DATE_CONFIG = "OutOfDateConfigurationNeeded"
REVOKED = "Revoked"
STATUSES = (UP_TO_DATE, SW_HARDENING, CONFIG_NEEDED, CONFIG_AND_SW, OUT_OF_DATE, OUT_OF_DATE_CONFIG, REVOKED)
_MODULE_VERSION_INDEX = 1  # TEE_TCB_SVN[1]: TDX module major version
_MODULE_SVN_INDEX = 0  # TEE_TCB_SVN[0]: TDX module SVN


@dataclass(frozen=True)
class TdTcb:
    """The TD report fields TCB evaluation reads (a TdReportBody has them too)."""

    tee_tcb_svn: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes


@dataclass(frozen=True)
class TcbVerdict:
    status: str
    advisory_ids: tuple[str, ...]
    platform_status: str
    module_status: str | None
    qe_status: str
    tcb_date: str


def _status(value: str, where: str) -> str:
    if value not in STATUSES:
        raise VerificationError(
            Reason.COLLATERAL_INVALID, f"{where} tcbStatus is {value!r}, expected one of {STATUSES}"
        )
    return value


def _platform_level(tcb: TcbInfo, pck: PckExtensions, body: TdTcb) -> TcbLevel:
    skip = 2 if body.tee_tcb_svn[_MODULE_VERSION_INDEX] != 0 else 0
    for level in tcb.levels:
        if any(have < need for have, need in zip(pck.tcb_comp_svns, level.sgx_svns, strict=True)):
            continue
        if pck.pce_svn < level.pce_svn:
            continue
        tdx = zip(body.tee_tcb_svn[skip:], level.tdx_svns[skip:], strict=True)
        if any(have < need for have, need in tdx):
            continue
        return level
    raise VerificationError(
        Reason.TCB_NOT_SUPPORTED,
        f"no tcbInfo.tcbLevels entry matches PCK SGX TCB {list(pck.tcb_comp_svns)} PCESVN {pck.pce_svn} "
        f"and TEE_TCB_SVN {body.tee_tcb_svn.hex()} (FMSPC {tcb.fmspc.hex()})",
    )


def _isv_level(levels: tuple[QeTcbLevel, ...], svn: int, what: str) -> QeTcbLevel:
    for level in levels:
        if svn >= level.isv_svn:
            return level
    raise VerificationError(
        Reason.TCB_NOT_SUPPORTED,
        f"{what} SVN {svn} is below every tcbLevels isvsvn {[lvl.isv_svn for lvl in levels]}",
    )


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(a & b for a, b in zip(value, mask, strict=True))


def _check_module(ident: ModuleIdentity, body: TdTcb, what: str) -> None:
    if body.mr_signer_seam != ident.mr_signer:
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"MRSIGNERSEAM is {body.mr_signer_seam.hex()}, expected {what}.mrsigner {ident.mr_signer.hex()}",
        )
    if _masked(body.seam_attributes, ident.attributes_mask) != _masked(ident.attributes, ident.attributes_mask):
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"SEAMATTRIBUTES is {body.seam_attributes.hex()}, expected {what}.attributes "
            f"{ident.attributes.hex()} under mask {ident.attributes_mask.hex()}",
        )


def _module_level(tcb: TcbInfo, body: TdTcb) -> QeTcbLevel | None:
    """[TCBINFO] tdxModule / tdxModuleIdentities: None when the module is judged by tdxtcbcomponents alone."""
    major = body.tee_tcb_svn[_MODULE_VERSION_INDEX]
    if major == 0:
        _check_module(tcb.tdx_module, body, "tcbInfo.tdxModule")
        return None
    wanted = f"TDX_{major:02d}"
    for ident in tcb.module_identities:
        if ident.id.upper() == wanted:
            _check_module(ident, body, f"tcbInfo.tdxModuleIdentities[{wanted}]")
            return _isv_level(ident.levels, body.tee_tcb_svn[_MODULE_SVN_INDEX], f"TDX module {wanted}")
    raise VerificationError(
        Reason.TCB_NOT_SUPPORTED,
        f"TEE_TCB_SVN[1] is TDX module version {major}, tcbInfo.tdxModuleIdentities has no {wanted} "
        f"(has {[ident.id for ident in tcb.module_identities]})",
    )


def match_qe_identity(qe: EnclaveIdentity, report: QeReport) -> QeTcbLevel:
    """[QEID] the QE report against the TD_QE identity; untrusted_key when the QE is not Intel's."""
    if qe.id != "TD_QE":
        raise VerificationError(Reason.COLLATERAL_INVALID, f"enclaveIdentity.id is {qe.id!r}, expected 'TD_QE'")
    if report.mr_signer != qe.mr_signer:
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"QE report MRSIGNER is {report.mr_signer.hex()}, expected {qe.mr_signer.hex()}",
        )
    if report.isv_prod_id != qe.isv_prod_id:
        raise VerificationError(
            Reason.UNTRUSTED_KEY, f"QE report ISVPRODID is {report.isv_prod_id}, expected {qe.isv_prod_id}"
        )
    if report.miscselect & qe.miscselect_mask != qe.miscselect & qe.miscselect_mask:
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"QE report MISCSELECT is {report.miscselect:#010x}, expected {qe.miscselect:#010x} "
            f"under mask {qe.miscselect_mask:#010x}",
        )
    if _masked(report.attributes, qe.attributes_mask) != _masked(qe.attributes, qe.attributes_mask):
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"QE report ATTRIBUTES is {report.attributes.hex()}, expected {qe.attributes.hex()} "
            f"under mask {qe.attributes_mask.hex()}",
        )
    return _isv_level(qe.levels, report.isv_svn, "QE report ISVSVN")


def _converge(platform: str, other: str | None) -> str:
    """QVL convergeTcbStatusWithTdxModuleStatus / ...WithQeTcbStatus: a worse module or QE level degrades the
    platform status; Revoked anywhere is Revoked."""
    if other is None or other == UP_TO_DATE:
        return platform
    if REVOKED in (platform, other):
        return REVOKED
    if other in (OUT_OF_DATE, OUT_OF_DATE_CONFIG):
        if platform in (UP_TO_DATE, SW_HARDENING, OUT_OF_DATE):
            return OUT_OF_DATE
        return OUT_OF_DATE_CONFIG
    return platform


def evaluate_tcb(tcb: TcbInfo, pck: PckExtensions, body: TdTcb, qe: EnclaveIdentity, report: QeReport) -> TcbVerdict:
    """The TCB status and advisory IDs (claims tcb_status, advisory_ids of docs/evidence.md)."""
    if tcb.fmspc != pck.fmspc:
        raise VerificationError(
            Reason.FMSPC_MISMATCH,
            f"tcbInfo.fmspc is {tcb.fmspc.hex()}, expected the PCK FMSPC {pck.fmspc.hex()}",
        )
    if tcb.pce_id != pck.pce_id:
        raise VerificationError(
            Reason.FMSPC_MISMATCH,
            f"tcbInfo.pceId is {tcb.pce_id.hex()}, expected the PCK PCE-ID {pck.pce_id.hex()}",
        )
    qe_level = match_qe_identity(qe, report)
    level = _platform_level(tcb, pck, body)
    module = _module_level(tcb, body)
    platform = _status(level.status, "tcbInfo.tcbLevels")
    module_status = None if module is None else _status(module.status, "tcbInfo.tdxModuleIdentities")
    qe_status = _status(qe_level.status, "enclaveIdentity.tcbLevels")
    status = _converge(_converge(platform, module_status), qe_status)
    advisories = list(level.advisory_ids)
    for extra in (module, qe_level):
        if extra is not None:
            advisories += [a for a in extra.advisory_ids if a not in advisories]
    return TcbVerdict(
        status=status,
        advisory_ids=tuple(advisories),
        platform_status=platform,
        module_status=module_status,
        qe_status=qe_status,
        tcb_date=level.date,
    )
