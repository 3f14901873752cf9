"""swtpm fixtures for the TPM tests (see tests/_swtpm.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._swtpm import Swtpm


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    """A fresh swtpm with no EK certificate."""
    with Swtpm(tmp_path / "swtpm") as tpm:
        yield tpm


@pytest.fixture(scope="module")
def swtpm_ek(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    """A swtpm made by swtpm_setup with an EK certificate from a local CA (module-scoped: slow to make)."""
    with Swtpm(tmp_path_factory.mktemp("swtpm-ek"), ek_certificate=True) as tpm:
        yield tpm
