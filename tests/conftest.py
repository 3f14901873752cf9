"""Shared fixtures: the real vectors in tests/vectors (provenance in its PROVENANCE.md), and running the console
scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"

# Console script name -> module with main(); run through the interpreter so the tests use this checkout.
SCRIPTS = {
    "kbs": "kbs.cli",
    "attestation-agent": "attestation_agent.cli",
    "verifier": "verifier.cli",
    "guest": "guest.cli",
}


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"the real test vectors are missing: expected them at {VECTORS}")
    return VECTORS


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "attestation-agent")])
    env.update(extra or {})
    return env


def run_cli(
    script: str,
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run a console script of this checkout; returns the completed process (stdout/stderr as bytes)."""
    code = f"import sys; from {SCRIPTS[script]} import main; sys.argv[0] = {script!r}; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=input,
        capture_output=True,
        env=cli_env(env),
        timeout=timeout,
        check=False,
    )
