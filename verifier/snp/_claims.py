"""SNP claims: the typed result of a verified report, and its one conversion to the JSON of docs/evidence.md."""

from __future__ import annotations

from dataclasses import dataclass

from ._abi import AttestationReport, Tcb, decode_tcb

__all__ = ["SnpClaims", "claims_from_report"]


@dataclass(frozen=True)
class SnpClaims:
    report: AttestationReport
    product: str
    signing_key: str  # "vcek" | "vlek"
    current_tcb: Tcb
    reported_tcb: Tcb
    committed_tcb: Tcb
    launch_tcb: Tcb

    def to_json(self) -> dict[str, object]:
        """The claims document (docs/evidence.md, snp): lowercase hex for byte fields, ints for numbers."""
        r = self.report
        return {
            "report_version": r.version,
            "measurement": r.measurement.hex(),
            "report_data": r.report_data.hex(),
            "host_data": r.host_data.hex(),
            "chip_id": r.chip_id.hex(),
            "policy": r.policy.raw,
            "policy_abi_major": r.policy.abi_major,
            "policy_abi_minor": r.policy.abi_minor,
            "debug": r.policy.debug,
            "migrate_ma": r.policy.migrate_ma,
            "smt_allowed": r.policy.smt_allowed,
            "single_socket": r.policy.single_socket,
            "vmpl": r.vmpl,
            "signature_algo": r.signature_algo,
            "guest_svn": r.guest_svn,
            "family_id": r.family_id.hex(),
            "image_id": r.image_id.hex(),
            "reported_tcb": _tcb_json(self.reported_tcb),
            "current_tcb": _tcb_json(self.current_tcb),
            "committed_tcb": _tcb_json(self.committed_tcb),
            "launch_tcb": _tcb_json(self.launch_tcb),
            "product": self.product,
            "signing_key": self.signing_key,
            "platform_info": r.platform_info.raw,
            "platform_smt_enabled": r.platform_info.smt_enabled,
            "platform_tsme_enabled": r.platform_info.tsme_enabled,
            "id_key_digest": r.id_key_digest.hex(),
            "author_key_digest": r.author_key_digest.hex(),
            "author_key_en": r.author_key_en,
            "mask_chip_key": r.mask_chip_key,
            "report_id": r.report_id.hex(),
            "report_id_ma": r.report_id_ma.hex(),
            "cpuid": (
                None
                if r.cpuid is None
                else {"family": r.cpuid.family, "model": r.cpuid.model, "stepping": r.cpuid.stepping}
            ),
            "current_version": str(r.current_version),
            "committed_version": str(r.committed_version),
            "launch_mit_vector": r.launch_mit_vector,
            "current_mit_vector": r.current_mit_vector,
        }


def claims_from_report(report: AttestationReport, product: str, signing_key: str) -> SnpClaims:
    turin = product == "Turin"
    return SnpClaims(
        report=report,
        product=product,
        signing_key=signing_key,
        current_tcb=decode_tcb(report.current_tcb, turin=turin),
        reported_tcb=decode_tcb(report.reported_tcb, turin=turin),
        committed_tcb=decode_tcb(report.committed_tcb, turin=turin),
        launch_tcb=decode_tcb(report.launch_tcb, turin=turin),
    )


def _tcb_json(tcb: Tcb) -> dict[str, object]:
    out: dict[str, object] = {
        "bootloader": tcb.bootloader,
        "tee": tcb.tee,
        "snp": tcb.snp,
        "microcode": tcb.microcode,
    }
    if tcb.fmc is not None:
        out["fmc"] = tcb.fmc
    out["raw"] = f"{tcb.raw:016x}"
    return out
