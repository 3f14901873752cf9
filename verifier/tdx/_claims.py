"""The claims of a verified TDX quote (docs/evidence.md) and their one conversion to JSON."""

from __future__ import annotations

from dataclasses import dataclass

from ..eventlog import aael_claims
from ._pck import PckExtensions
from ._quote import Quote
from ._tcb import TcbVerdict

__all__ = ["TD_ATTRIBUTES_DEBUG", "TdxClaims", "claims_from"]

# Intel TDX module ABI, TDINFO_STRUCT.ATTRIBUTES bit 0: TUD.DEBUG ("the TD runs in off-TD debug mode").
TD_ATTRIBUTES_DEBUG = 0x01


@dataclass(frozen=True)
class TdxClaims:
    quote: Quote
    pck: PckExtensions
    tcb: TcbVerdict
    collateral_expired: bool
    eventlog: dict[str, object] | None = None
    rtmr_replay_ok: bool | None = None
    aa_eventlog: list[dict[str, str]] | None = None  # an older guest's AA event log, replayed to RTMR3

    @property
    def debug(self) -> bool:
        return bool(self.quote.body.td_attributes[0] & TD_ATTRIBUTES_DEBUG)

    def to_json(self) -> dict[str, object]:
        """The "tdx" claims of docs/evidence.md; hex is lowercase. The only place claims become JSON."""
        body, header, qe = self.quote.body, self.quote.header, self.quote.qe_report
        out: dict[str, object] = {
            "quote_version": header.version,
            "body_type": body.body_type,
            "mr_td": body.mr_td.hex(),
            "rtmr": [r.hex() for r in body.rtmr],
            "mr_seam": body.mr_seam.hex(),
            "mr_signer_seam": body.mr_signer_seam.hex(),
            "seam_attributes": body.seam_attributes.hex(),
            "mr_config_id": body.mr_config_id.hex(),
            "mr_owner": body.mr_owner.hex(),
            "mr_owner_config": body.mr_owner_config.hex(),
            "report_data": body.report_data.hex(),
            "td_attributes": body.td_attributes.hex(),
            "debug": self.debug,
            "xfam": body.xfam.hex(),
            "tee_tcb_svn": body.tee_tcb_svn.hex(),
            "fmspc": self.pck.fmspc.hex(),
            "pce_id": self.pck.pce_id.hex(),
            "pce_svn": self.pck.pce_svn,
            "cpu_svn": self.pck.cpusvn.hex(),
            "sgx_tcb_comp_svn": list(self.pck.tcb_comp_svns),
            "tcb_status": self.tcb.status,
            "tcb_date": self.tcb.tcb_date,
            "platform_tcb_status": self.tcb.platform_status,
            "tdx_module_tcb_status": self.tcb.module_status,
            "qe_tcb_status": self.tcb.qe_status,
            "advisory_ids": list(self.tcb.advisory_ids),
            "collateral_expired": self.collateral_expired,
            "qe_svn": qe.isv_svn,
            "qe_mr_enclave": qe.mr_enclave.hex(),
        }
        if body.tee_tcb_svn2 is not None and body.mr_servicetd is not None:
            out["tee_tcb_svn2"] = body.tee_tcb_svn2.hex()
            out["mr_servicetd"] = body.mr_servicetd.hex()
        if self.eventlog is not None:
            out["eventlog"] = self.eventlog
            out["rtmr_replay_ok"] = self.rtmr_replay_ok
            events = self.eventlog.get("events")
            out["aael"] = aael_claims(events) if isinstance(events, list) else []  # runtime events (CoCo AAEL)
        if self.aa_eventlog is not None:
            out["aa_eventlog"] = self.aa_eventlog
        return out


def claims_from(
    quote: Quote,
    pck: PckExtensions,
    tcb: TcbVerdict,
    *,
    collateral_expired: bool,
    eventlog: dict[str, object] | None = None,
    aa_eventlog: list[dict[str, str]] | None = None,
) -> TdxClaims:
    return TdxClaims(
        quote=quote,
        pck=pck,
        tcb=tcb,
        collateral_expired=collateral_expired,
        eventlog=eventlog,
        rtmr_replay_ok=None if eventlog is None else True,
        aa_eventlog=aa_eventlog,
    )
