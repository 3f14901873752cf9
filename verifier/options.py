"""What a verification is judged against: the time, the expected binding, collateral and trust anchors.

The verifier reads no clock and does no I/O: everything it needs arrives here. Fetchers for collateral that
lives on the network (AMD KDS, Intel PCS) are passed in through `sources` as objects of the protocol each TEE
module defines, keyed by TEE name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
    sources: network-backed collateral sources by TEE name ("tdx", "snp", "tpm"); each module checks the type.
    trust: extra trust anchors (PEM/DER bytes) by TEE name, added to the pinned vendor roots.
    """

    at: datetime
    report_data: bytes | None = None
    init_data_digest: bytes | None = None
    collateral: tuple[bytes, ...] = ()
    certificates: tuple[bytes, ...] = ()
    allow_expired_collateral: bool = False
    sources: Mapping[str, object] = field(default_factory=dict)
    trust: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("Options.at must be timezone-aware")
