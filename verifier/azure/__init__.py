"""Azure confidential VMs (`az-snp-vtpm`, `az-tdx-vtpm`): what the two TEEs share.

On Azure the guest does not see the SNP or TDX device: the paravisor (HCL) makes the hardware report, binds its
own runtime data (with the vTPM's attestation key) into REPORT_DATA, and the guest attests through the vTPM.

Pipeline (`verify_azure`; each step trusts only what the previous one proved):
 1. parse the evidence JSON (versions 0, 1, 2: `_evidence`) and the HCL report's structure (`_hcl`); its report
    type must be the TEE's;
 2. the hardware report, verified exactly as `--tee snp` / `--tee tdx` do (the TEE package's `verify_hardware`),
    with REPORT_DATA expected to be the runtime data's digest zero-padded (`HclReport.runtime_data_report_data`):
    a changed byte of the runtime data is `report_data_mismatch`;
 3. the runtime data, now authentic, parsed: the AK (`_runtime`);
 4. the vTPM quote verified as `--tee tpm` verifies one, with that AK: signature, pcrDigest, extraData against the
    expected report data, PCR8 against the init-data digest (`_vtpm`);
 5. evidence version 2: the runtime data's user-data begins with the expected report data;
 6. claims `{"tpm", "hcl", "snp" | "tdx"}` (`_claims`).

>>> import json
>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> import verifier
>>> evidence = Path("tests/vectors/azure/az-snp-vtpm/evidence-v1.json").read_bytes()
>>> options = verifier.Options(at=datetime(2026, 11, 27, tzinfo=UTC), report_data=b"challenge")
>>> claims = verifier.verify("az-snp-vtpm", evidence, options).claims
>>> claims["tpm"]["report_data"], claims["snp"]["vmpl"], claims["hcl"]["report_type"]
('6368616c6c656e6765', 0, 'snp')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from ..errors import FormatError, Reason, VerificationError
from ..options import Options
from ..registry import Tee
from ..result import Verified
from ..tpm import _binding as vtpm_binding
from ._claims import AK_TRUST_HCL, AzureClaims
from ._evidence import AzureEvidence, parse_evidence
from ._hcl import HclReport, parse_hcl_report
from ._runtime import RuntimeData, parse_runtime_data
from ._tdreport import check_td_report
from ._vtpm import check_user_data, verify_vtpm_quote

__all__ = [
    "AK_TRUST_HCL",
    "AzureClaims",
    "AzureEvidence",
    "HardwareVerifier",
    "HclReport",
    "RuntimeData",
    "azure_tee",
    "check_td_report",
    "parse_evidence",
    "parse_hcl_report",
    "parse_runtime_data",
    "verify_azure",
]

# (HCL report, the evidence's hardware field (VCEK or TD quote), options whose report_data is the runtime data's
# binding and which bind no init-data) -> the hardware report's claims, as `--tee snp` / `--tee tdx` make them.
HardwareVerifier = Callable[[HclReport, bytes, Options], Mapping[str, object]]

# The HCL report type each TEE accepts.
REPORT_TYPE = {"az-snp-vtpm": "snp", "az-tdx-vtpm": "tdx"}
VERSION_WITH_USER_DATA = 2


def _verify_hardware(
    hcl: HclReport, hardware: bytes, options: Options, verify: HardwareVerifier, field: str
) -> Mapping[str, object]:
    """Step 2: REPORT_DATA expected to bind the runtime data; init-data is the vTPM's (PCR 8), not the hardware
    report's (HOST_DATA and MRCONFIGID are the host's on Azure)."""
    bound = dataclasses.replace(options, report_data=hcl.runtime_data_report_data(), init_data_digest=None)
    try:
        return verify(hcl, hardware, bound)
    except VerificationError as exc:
        if exc.reason is not Reason.REPORT_DATA_MISMATCH:
            raise
        raise VerificationError(
            Reason.REPORT_DATA_MISMATCH,
            f"{exc.detail}: {field} does not bind the HCL runtime data (expected its {hcl.hash_name} digest, "
            "zero-padded)",
        ) from exc


def verify_azure(
    tee: str, evidence: Mapping[str, object] | bytes, options: Options, verify_hardware: HardwareVerifier, field: str
) -> Verified:
    """Steps 1-6 of the module docstring; VerifierError with a reason code (docs/evidence.md) on any failure.
    `field` names the hardware report's report-data field in errors."""
    parsed = parse_evidence(evidence, tee)
    hcl = parse_hcl_report(parsed.hcl_report)
    if hcl.report_type != REPORT_TYPE[tee]:
        raise FormatError(
            f"{tee} evidence: HCL report type is {hcl.report_type.upper()}, expected {REPORT_TYPE[tee].upper()}",
            Reason.UNSUPPORTED_FORMAT,
        )
    hardware = _verify_hardware(hcl, parsed.hardware, options, verify_hardware, field)
    runtime = parse_runtime_data(hcl.runtime_data)
    quote = verify_vtpm_quote(parsed, runtime, options)
    if parsed.version >= VERSION_WITH_USER_DATA:
        check_user_data(runtime, options)
    claims = AzureClaims(parsed.version, hcl, runtime, quote.claims, hardware)
    return Verified(tee, claims.to_json(), quote.report_data)  # report_data: the quote's extraData


def azure_tee(name: str, verify_hardware: HardwareVerifier, *, field: str, sources: tuple[str, ...]) -> Tee:
    """The registry declaration of an Azure CVM TEE whose hardware report `verify_hardware` checks (`field`: its
    report-data field, for errors; `sources`: the Options collateral fields it reads).

    Binding as guest-components' attesters make it: the runtime digest as it is (48 bytes) in the vTPM quote's
    extraData, and init-data in PCR 8 of the vTPM, as on a TPM (the hardware report's own fields are the
    paravisor's and the host's)."""

    def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
        return verify_azure(name, evidence, options, verify_hardware, field)

    return Tee(
        name=name,
        verify=verify,
        report_data=lambda runtime_digest: runtime_digest,
        init_data=vtpm_binding.init_data,
        sources=sources,
        default_policy=f"{name}.rego",
    )
