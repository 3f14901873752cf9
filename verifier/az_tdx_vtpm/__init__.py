"""Azure TDX confidential VMs (`az-tdx-vtpm`): the TD quote verified exactly as `--tee tdx` verifies one
(collateral from `--collateral` or the configured PCS/PCCS source), then the vTPM quote with the AK of the
runtime data (`verifier.azure`).

The HCL report holds the TDREPORT the quote was made from; the quote's REPORTDATA must be the runtime data's
digest, zero-padded, and the TDREPORT must be the one the quote signs (`verifier.azure.check_td_report`).
MRCONFIGID is not the init-data on Azure: init-data is bound in PCR8 of the vTPM.

>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> import verifier
>>> evidence = Path("tests/vectors/azure/az-tdx-vtpm/evidence-v1.json").read_bytes()
>>> verifier.verify("az-tdx-vtpm", evidence, Options(at=datetime(2026, 11, 27, tzinfo=UTC)))
Traceback (most recent call last):
verifier.errors.VerificationError: collateral_missing: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .. import tdx
from ..azure import HclReport, check_td_report, verify_azure
from ..errors import Reason, VerificationError
from ..options import Options
from ..registry import Tee
from ..result import Verified
from ..tpm import _binding as vtpm_binding

__all__ = ["TEE", "Options", "verify"]

NAME = "az-tdx-vtpm"


def verify_hardware(hcl: HclReport, td_quote: bytes, options: Options) -> Mapping[str, object]:
    """The TD quote as `--tee tdx` verifies it, REPORTDATA bound to the runtime data, the TDREPORT its own."""
    quote_options = dataclasses.replace(options, report_data=hcl.runtime_data_report_data(), init_data_digest=None)
    try:
        claims = tdx.verify(td_quote, quote_options).claims
    except VerificationError as exc:
        if exc.reason is not Reason.REPORT_DATA_MISMATCH:
            raise
        raise VerificationError(
            Reason.REPORT_DATA_MISMATCH,
            f"{exc.detail}: the TD quote's REPORTDATA does not bind the HCL runtime data (expected its "
            f"{hcl.hash_name} digest, zero-padded)",
        ) from exc
    check_td_report(hcl.hw_report, tdx.parse_quote(td_quote))
    return claims


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Verify az-tdx-vtpm evidence (any version); claims `{"tpm", "hcl", "tdx"}`."""
    return verify_azure(NAME, evidence, options, verify_hardware)


# The runtime digest as it is (48 bytes) in the vTPM quote's extraData, where guest-components' attesters put it;
# init-data in PCR 8 of the vTPM, as on a TPM (the hardware report's own fields are the paravisor's and host's).
TEE = Tee(
    name=NAME,
    verify=verify,
    report_data=lambda runtime_digest: runtime_digest,
    init_data=vtpm_binding.init_data,
    sources=("collateral", "certificates", "tdx_collateral", "trust"),
    default_policy=f"{NAME}.rego",
)
