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

from collections.abc import Mapping

from .. import tdx
from ..azure import HclReport, azure_tee, check_td_report
from ..options import Options

__all__ = ["TEE", "Options", "verify"]


def verify_hardware(hcl: HclReport, td_quote: bytes, options: Options) -> Mapping[str, object]:
    """The TD quote as `--tee tdx` verifies it; the HCL report's TDREPORT the one the quote signs."""
    claims = tdx.verify(td_quote, options).claims
    check_td_report(hcl.hw_report, tdx.parse_quote(td_quote))
    return claims


TEE = azure_tee(
    "az-tdx-vtpm",
    verify_hardware,
    field="the TD quote's REPORTDATA",
    sources=("collateral", "certificates", "tdx_collateral", "trust"),
)
verify = TEE.verify  # any evidence version; claims `{"tpm", "hcl", "tdx"}`
