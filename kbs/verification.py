"""From broker settings to verifier inputs: trust anchors, offline collateral and network collateral sources."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from verifier import Options
from verifier.sources import EnrolledAkSource

from .collateral.files import read_documents
from .collateral.kds import KdsClient
from .collateral.pcs import PcsClient
from .settings import VerifierSettings

__all__ = ["Sources", "VerifierInputs", "build_sources"]


class Sources(TypedDict, total=False):
    """The network-backed collateral sources, by TEE."""

    snp: KdsClient
    tdx: PcsClient


def build_sources(settings: VerifierSettings) -> Sources:
    """Network-backed collateral sources by TEE (AMD KDS, Intel PCS). Offline, only what a cache already holds."""
    sources: Sources = {}
    if not settings.offline or settings.cache_dir is not None:
        # AMD KDS: VCEKs by chip and TCB, fetched once and kept in cache_dir/snp; CRLs for revocation.
        snp_cache = settings.cache_dir / "snp" if settings.cache_dir is not None else None
        sources["snp"] = KdsClient(cache_dir=snp_cache, offline=settings.offline)
    if not settings.offline:
        # Intel PCS (or a PCCS at tdx_pcs_url): TCB info, QE identity and CRLs by FMSPC, cached in cache_dir/tdx.
        tdx_cache = settings.cache_dir / "tdx" if settings.cache_dir is not None else None
        sources["tdx"] = PcsClient(settings.tdx_pcs_url, cache_dir=tdx_cache)
    return sources


class VerifierInputs:
    """Loaded once at start: the files named in the configuration, and the fetchers."""

    def __init__(self, settings: VerifierSettings) -> None:
        self.allow_sample = settings.allow_sample
        self.trust = {tee: read_documents(paths) for tee, paths in settings.trust.items()}
        self.collateral = read_documents(settings.collateral)
        self.sources = build_sources(settings)

    def options(self, *, at: datetime, enrolled_aks: EnrolledAkSource | None = None) -> Options:
        """The verifier's options at `at`; the expected bindings are `verifier.attest`'s to set."""
        return Options(
            at=at,
            collateral=self.collateral,
            tdx_collateral=self.sources.get("tdx"),
            snp_certificates=self.sources.get("snp"),
            tpm_enrolled_aks=enrolled_aks,
            trust=self.trust,
        )
