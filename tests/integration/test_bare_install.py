"""`pip install veritee` with no extras: the agent, the guest and the verifier work, the broker's stack is absent.

The real bare dependency set is installed into a new venv (pip's cache makes repeats quick; the first run fetches
from the package index), then the console scripts run from that venv, outside this checkout.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """The environment without this checkout on the path: only what the venv installed is importable."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        # -v shows the build backend's output, where setuptools prints its deprecation warnings.
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-v", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        env=_clean_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    # The SPDX license string (setuptools >= 77): no deprecation block on install, as the license table printed.
    output = (done.stdout + done.stderr).decode(errors="replace")
    warnings = [line for line in output.splitlines() if "BuildBackendWarning" in line or "DeprecationWarning" in line]
    assert not warnings, warnings
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        env=_clean_env(),
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("script", ["attestation-agent", "guest", "verifier"])
def test_guest_and_verifier_scripts_run(bare_venv: Path, tmp_path: Path, script: str) -> None:
    done = _run(bare_venv, script, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert b"usage:" in done.stdout


# sevsnpmeasure: `kbs admin reference-value derive snp` is the admin's tool, not the guest's.
@pytest.mark.parametrize(
    "module", ["fastapi", "sqlmodel", "pydantic", "starlette", "alembic", "uvicorn", "regorus", "sevsnpmeasure"]
)
def test_broker_stack_absent(bare_venv: Path, tmp_path: Path, module: str) -> None:
    done = _run(bare_venv, "python", "-c", f"import {module}", cwd=tmp_path)
    assert done.returncode == 1
    assert b"ModuleNotFoundError" in done.stderr


def test_agent_and_verifier_work_bare(bare_venv: Path, tmp_path: Path) -> None:
    evidence = _run(
        bare_venv, "attestation-agent", "evidence", "--tee", "sample", "--report-data", "0102", cwd=tmp_path
    )
    assert evidence.returncode == 0, evidence.stderr.decode()
    assert json.loads(evidence.stdout)["report_data"] == base64.b64encode(b"\x01\x02").decode()
    (tmp_path / "evidence.json").write_bytes(evidence.stdout)
    verified = _run(
        bare_venv, "verifier", "verify", "--tee", "sample", "evidence.json", "--report-data", "0102", cwd=tmp_path
    )
    assert verified.returncode == 0, verified.stderr.decode()
    assert json.loads(verified.stdout)["claims"]["report_data"] == "0102"


def test_kbs_says_how_to_install_the_broker(bare_venv: Path, tmp_path: Path) -> None:
    done = _run(bare_venv, "kbs", "--help", cwd=tmp_path)
    assert done.returncode == 1
    assert b"pip install 'veritee[kbs]'" in done.stderr
    assert b"Traceback" not in done.stderr


def test_appraisal_without_rego_engine_is_a_clear_error(bare_venv: Path, tmp_path: Path) -> None:
    code = "from verifier.rego import Policy\nPolicy.compile('package policy\\ndefault allow := false\\n')"
    done = _run(bare_venv, "python", "-c", code, cwd=tmp_path)
    assert done.returncode == 1
    assert b"pip install 'veritee[rego]'" in done.stderr
