"""AMD SEV-SNP: parse the ATTESTATION_REPORT, verify it down to AMD's roots, make the claims of docs/evidence.md.

    verify(evidence, options) -> Verified       the pipeline (parse, signature, chain, bindings, claims)
    parse_report(data) -> AttestationReport     structure only (FormatError on bad bytes)
    Options.snp_certificates                    a verifier.sources.SnpCertificateSource (kbs.collateral.kds)
    TEE                                         the registry's declaration; bindings in `_binding`: REPORT_DATA
                                                carries the runtime digest and 16 zero bytes, HOST_DATA the
                                                init-data digest's first 32 bytes

>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> snp = Path(__file__).parents[2] / "tests/vectors/snp/go-sev-guest"
>>> vcek = (snp / "vcek.testcer").read_bytes()
>>> options = Options(at=datetime(2026, 11, 27, tzinfo=UTC), certificates=(vcek,))
>>> result = verify((snp / "attestation.bin").read_bytes(), options)
>>> result.claims["product"], result.claims["debug"]
('Milan', True)
"""

from __future__ import annotations

from ..options import Options
from ..registry import Tee
from . import _binding
from ._abi import REPORT_SIZE, SIGNED_SIZE, AttestationReport, SigningKey, Tcb, decode_tcb, parse_report
from ._certs import PRODUCTS, load_certificates
from ._claims import SnpClaims
from ._verify import product_from_cpuid, verify

__all__ = [
    "PRODUCTS",
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "TEE",
    "AttestationReport",
    "Options",
    "SigningKey",
    "SnpClaims",
    "Tcb",
    "decode_tcb",
    "load_certificates",
    "parse_report",
    "product_from_cpuid",
    "verify",
]

TEE = Tee(
    name="snp",
    verify=verify,
    report_data=_binding.report_data,
    init_data=_binding.init_data,
    sources=("collateral", "certificates", "snp_certificates", "trust"),
    default_policy="snp.rego",
)
