"""The claims of a verified Azure CVM, typed, and their one conversion to JSON:
`{"tpm": <--tee tpm claims>, "hcl": <report and runtime claims>, "snp" | "tdx": <--tee snp | tdx claims>}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ._hcl import HclReport
from ._runtime import RuntimeData

__all__ = ["AK_TRUST_HCL", "AzureClaims"]

# The `tpm.ak_trust` of an Azure vTPM AK: vouched for by the hardware report that binds the runtime data that
# carries it (not a certificate, not an enrolment, not an allowlist).
AK_TRUST_HCL = "hcl"


class AzureClaims(NamedTuple):
    evidence_version: int
    hcl: HclReport
    runtime: RuntimeData
    tpm: Mapping[str, object]  # the --tee tpm claims of the vTPM quote
    hardware: Mapping[str, object]  # the --tee snp / --tee tdx claims of the hardware report

    def to_json(self) -> dict[str, object]:
        tpm = dict(self.tpm)
        tpm["ak_trust"] = AK_TRUST_HCL
        runtime = self.runtime
        configuration = runtime.document.get("vm-configuration")
        hcl: dict[str, object] = {
            "evidence_version": self.evidence_version,
            "report_version": self.hcl.version,
            "request_type": self.hcl.request_type,
            "report_type": self.hcl.report_type,
            "runtime_data_hash": self.hcl.hash_name,
            "ak_sha256": runtime.ak_sha256.hex(),
            "vm_configuration": dict(configuration) if isinstance(configuration, dict) else None,
            "user_data": None if runtime.user_data is None else runtime.user_data.hex(),
            "runtime_data": dict(runtime.document),
        }
        return {"tpm": tpm, "hcl": hcl, self.hcl.report_type: dict(self.hardware)}
