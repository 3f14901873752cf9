"""AMD SEV-SNP: parse the ATTESTATION_REPORT, verify it down to AMD's roots, make the claims of docs/evidence.md.

    verify(evidence, options) -> Verified       the pipeline (parse, signature, chain, bindings, claims)
    parse_report(data) -> AttestationReport     structure only (FormatError on bad bytes)
    SnpCollateralSource                         the protocol of Options.sources["snp"] (verifier.snp.kds)

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
from ._abi import REPORT_SIZE, SIGNED_SIZE, AttestationReport, SigningKey, Tcb, decode_tcb, parse_report
from ._claims import SnpClaims, claims_json
from ._verify import SnpCollateralSource, product_from_cpuid, verify

__all__ = [
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "AttestationReport",
    "Options",
    "SigningKey",
    "SnpClaims",
    "SnpCollateralSource",
    "Tcb",
    "claims_json",
    "decode_tcb",
    "parse_report",
    "product_from_cpuid",
    "verify",
]
