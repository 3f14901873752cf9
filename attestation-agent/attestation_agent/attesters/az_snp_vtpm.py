"""Azure SEV-SNP confidential VMs (`az-snp-vtpm`): the HCL report with the SNP report in it, the vTPM quote, and
the VCEK that Azure's IMDS serves (`GET /metadata/THIM/amd/certification`, PEM, as guest-components fetches it).
The plumbing is `_azure`; detection reads the HCL report at vTPM NV index 0x01400001 and checks its type.

>>> from pathlib import Path
>>> probe(Path("/nonexistent")) is None or "VERITEE_TPM_TCTI" in __import__("os").environ
True
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from . import AttesterError
from ._azure import AzureVtpmAttester, probe_kind

__all__ = ["AzSnpVtpmAttester", "probe"]

CERTIFICATION_PATH = "/metadata/THIM/amd/certification"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


class AzSnpVtpmAttester(AzureVtpmAttester):
    tee = "az-snp-vtpm"
    kind = "snp"
    hardware_field = "vcek"

    def _hardware(self, _report: bytes) -> bytes:
        """The VCEK (DER) of this host, from IMDS: `{"vcekCert": PEM, "certificateChain": PEM}` (the report is
        not needed: IMDS knows the host)."""
        answer = self._imds("GET", CERTIFICATION_PATH)
        pem = answer.get("vcekCert") if isinstance(answer, dict) else None
        found = _PEM.search(pem) if isinstance(pem, str) else None
        if found is None:
            raise AttesterError("Azure IMDS vcekCert is not a PEM certificate")
        return base64.b64decode("".join(found.group(1).split()))


def probe(sysroot: Path) -> AzSnpVtpmAttester | None:
    found = probe_kind(sysroot)
    if found is None or found[1] != "snp":
        return None
    return AzSnpVtpmAttester(found[0], sysroot=sysroot)
