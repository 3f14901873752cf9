"""The package docstring's example runs, from any working directory."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import verifier.eventlog


def test_package_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(verifier.eventlog, verbose=False, report=True)
    assert result.attempted >= 4
    assert result.failed == 0
