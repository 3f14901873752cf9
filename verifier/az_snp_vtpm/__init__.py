"""Azure SEV-SNP confidential VMs (`az-snp-vtpm`): the HCL report's SNP ATTESTATION_REPORT verified exactly as
`--tee snp` verifies a report, then the vTPM quote with the AK of the runtime data (`verifier.azure`).

The VCEK comes from the evidence (guest-components fetches it from Azure's IMDS), `--cert`, or the configured
AMD KDS source; the chain goes to the pinned AMD roots. REPORT_DATA must be the runtime data's digest, zero-padded.
The report must come from VMPL 0, the paravisor's: the guest runs at a higher VMPL and could ask the firmware
for a report of its own with any REPORT_DATA, so a report from another VMPL vouches for no AK (`untrusted_key`).
HOST_DATA is the host's, not the init-data: init-data is bound in PCR8 of the vTPM.

>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> evidence = Path("tests/vectors/azure/az-snp-vtpm/evidence-v2.json").read_bytes()
>>> report_data = bytes.fromhex(
...     "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef")
>>> import verifier
>>> claims = verifier.verify("az-snp-vtpm", evidence, Options(at=datetime(2026, 11, 27, tzinfo=UTC),
...                          report_data=report_data)).claims
>>> claims["snp"]["product"], claims["tpm"]["pcrs"]["sha256"]["0"][:8], claims["hcl"]["evidence_version"]
('Milan', '84275b2f', 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .. import snp
from ..azure import HclReport, azure_tee
from ..errors import Reason, VerificationError
from ..options import Options

__all__ = ["TEE", "Options", "verify"]

PARAVISOR_VMPL = 0


def verify_hardware(hcl: HclReport, vcek: bytes, options: Options) -> Mapping[str, object]:
    """The SNP report as `--tee snp` verifies it, the evidence's VCEK first among the candidates; VMPL 0."""
    claims = snp.verify(hcl.hw_report, dataclasses.replace(options, certificates=(vcek, *options.certificates))).claims
    if claims["vmpl"] != PARAVISOR_VMPL:
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"ATTESTATION_REPORT VMPL is {claims['vmpl']}, expected {PARAVISOR_VMPL} (the paravisor's): a report "
            "from another VMPL does not vouch for the runtime data and its AK",
        )
    return claims


TEE = azure_tee(
    "az-snp-vtpm",
    verify_hardware,
    field="REPORT_DATA",
    sources=("collateral", "certificates", "snp_certificates", "trust"),
)
verify = TEE.verify  # any evidence version; claims `{"tpm", "hcl", "snp"}`
