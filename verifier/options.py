"""What a verification is judged against: the time, the expected binding, collateral and trust anchors.

The verifier reads no clock and does no I/O: everything it needs arrives here. Sources of collateral that lives
elsewhere (Intel PCS/PCCS, AMD KDS, the broker's AK enrolments) come in typed fields, one per kind, as objects
of the protocols of `verifier.sources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .sources import EnrolledAkSource, SnpCertificateSource, TdxCollateralSource

__all__ = ["Options"]


@dataclass(frozen=True)
class Options:
    """Inputs of one verification.

    at: the time at which certificates and collateral are judged (timezone-aware).
    report_data: the expected report data; None skips the comparison (the CLI without --report-data).
        TDX/SNP compare the 64-byte field with this value zero-padded to 64 bytes; TPM compares extraData exactly.
    init_data_digest: the digest of the init-data TOML (docs/protocol.md); None skips the init-data check.
    collateral: raw collateral documents (TCB info, QE identity, CRLs, issuer chains, AMD certificates), each
        recognised by content.
    certificates: extra certificates in DER or PEM (VCEK/VLEK, AK certificates, chains).
    allow_expired_collateral: accept collateral past its nextUpdate, reporting collateral_expired: true.
    tdx_collateral: where TDX collateral missing from `collateral` comes from (TdxCollateralSource); unset, a
        quote without complete offline collateral is collateral_missing.
    snp_certificates: where a VCEK the evidence and `certificates` lack, and the product's CRL, come from
        (SnpCertificateSource); unset, an SNP report without its VCEK is collateral_missing.
    tpm_enrolled_aks: the AKs enrolled by credential activation (EnrolledAkSource); unset, an AK without a
        certificate has ak_trust "none".
    trust: extra trust anchors (PEM/DER bytes) by TEE name, added to the pinned vendor roots.
    """

    at: datetime
    report_data: bytes | None = None
    init_data_digest: bytes | None = None
    collateral: tuple[bytes, ...] = ()
    certificates: tuple[bytes, ...] = ()
    allow_expired_collateral: bool = False
    tdx_collateral: TdxCollateralSource | None = None
    snp_certificates: SnpCertificateSource | None = None
    tpm_enrolled_aks: EnrolledAkSource | None = None
    trust: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("Options.at must be timezone-aware")
