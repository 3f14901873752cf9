"""From broker settings to verifier inputs: trust anchors, offline collateral and network collateral sources."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from verifier import Options
from verifier.snp.kds import KdsClient

from .settings import VerifierSettings

__all__ = ["VerifierInputs", "build_sources"]


def _read_all(paths: list[Path]) -> tuple[bytes, ...]:
    out: list[bytes] = []
    for path in paths:
        if path.is_dir():
            out.extend(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
        else:
            out.append(path.read_bytes())
    return tuple(out)


def build_sources(settings: VerifierSettings) -> dict[str, object]:
    """Network-backed collateral sources by TEE (AMD KDS, Intel PCS). Offline, only what a cache already holds."""
    sources: dict[str, object] = {}
    if not settings.offline or settings.cache_dir is not None:
        # AMD KDS: VCEKs by chip and TCB, fetched once and kept in cache_dir/snp; CRLs for revocation.
        snp_cache = settings.cache_dir / "snp" if settings.cache_dir is not None else None
        sources["snp"] = KdsClient(cache_dir=snp_cache, offline=settings.offline)
    return sources


class VerifierInputs:
    """Loaded once at start: the files named in the configuration, and the fetchers."""

    def __init__(self, settings: VerifierSettings) -> None:
        self.allow_sample = settings.allow_sample
        self.trust = {tee: _read_all(paths) for tee, paths in settings.trust.items()}
        self.collateral = _read_all(settings.collateral)
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
