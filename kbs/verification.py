"""From broker settings to verifier inputs: trust anchors, offline collateral and network collateral sources."""

from __future__ import annotations

from datetime import datetime

from verifier import Options
from verifier.documents import read_documents
from verifier.snp.kds import KdsClient
from verifier.tdx.pcs import PcsClient

from .settings import VerifierSettings

__all__ = ["VerifierInputs", "build_sources"]


def build_sources(settings: VerifierSettings) -> dict[str, object]:
    """Network-backed collateral sources by TEE (AMD KDS, Intel PCS). Offline, only what a cache already holds."""
    sources: dict[str, object] = {}
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

    def options(
        self,
        *,
        at: datetime,
        report_data: bytes,
        init_data_digest: bytes | None,
        extra_sources: dict[str, object] | None = None,
    ) -> Options:
        return Options(
            at=at,
            report_data=report_data,
            init_data_digest=init_data_digest,
            collateral=self.collateral,
            sources={**self.sources, **(extra_sources or {})},
            trust=self.trust,
        )
