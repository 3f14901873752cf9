"""The docstring examples of the TDX verifier, PCS client and attester run, from any working directory."""

from __future__ import annotations

import doctest
from pathlib import Path
from types import ModuleType

import attestation_agent.attesters.tdx
import pytest

import verifier.tdx
from kbs.collateral import pcs


@pytest.mark.parametrize(
    ("module", "examples"),
    [(verifier.tdx, 8), (pcs, 3), (attestation_agent.attesters.tdx, 2)],
    ids=["verifier.tdx", "kbs.collateral.pcs", "attesters.tdx"],
)
def test_docstring_examples_run(
    module: ModuleType, examples: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.attempted >= examples
    assert result.failed == 0
