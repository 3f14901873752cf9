"""The `vectors` fixture, also from a git worktree (/work/wt/<name>), where ../shared is one level further up.

The root conftest looks only at <repo>/../shared/vectors; this looks at every ancestor's shared/vectors.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def find_vectors() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "vectors"
        if candidate.is_dir():
            return candidate
    pytest.fail(f"the real test vectors are missing: no shared/vectors above {here}")


@pytest.fixture(scope="session")
def vectors() -> Path:
    return find_vectors()
