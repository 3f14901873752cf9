"""The package docstring's example runs (from a checkout whose ../shared/vectors holds the vectors)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import verifier.eventlog


def test_package_example_runs(vectors: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "vectors").symlink_to(vectors)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    result = doctest.testmod(verifier.eventlog, verbose=False, report=True)
    assert result.attempted >= 4
    assert result.failed == 0
