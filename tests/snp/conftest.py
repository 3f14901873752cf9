"""SNP fixtures: the real vectors' paths, and a test-only AMD-like chain generated once per session."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.snp.make_test_chain import Chain, Vek, make_chain, make_vek
from verifier import Options

TODAY = datetime(2026, 11, 27, tzinfo=UTC)  # the date of EXPECTED.log's run


@pytest.fixture(scope="session")
def snp_vectors(vectors: Path) -> Path:
    return vectors / "snp"


@pytest.fixture(scope="session")
def milan_chain() -> Chain:
    return make_chain("Milan")


@pytest.fixture(scope="session")
def turin_chain() -> Chain:
    return make_chain("Turin")


@pytest.fixture(scope="session")
def milan_vcek(milan_chain: Chain) -> Vek:
    return make_vek(milan_chain)


def trusting(chain: Chain, **kwargs: object) -> Options:
    """Options that trust the test chain (and still the pinned AMD roots)."""
    return Options(at=kwargs.pop("at", TODAY), trust={"snp": (chain.trust_pem(),)}, **kwargs)  # type: ignore[arg-type]
