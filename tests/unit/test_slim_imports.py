"""The guest's and the verifier's code stays free of the broker's stack (issue 16: a slim guest install).

Every module of the agent, the guest, the wire module and the verifier is imported in a fresh interpreter, which
then must hold none of the web framework, the ORM, pydantic or the broker itself. The agent and the guest must
not need httpx either (the agent speaks HTTP through the standard library).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

BROKER_STACK = ("fastapi", "starlette", "sqlmodel", "sqlalchemy", "pydantic", "pydantic_settings", "alembic", "kbs")
# The network collateral clients import httpx; they live on the broker's side (kbs.collateral), none in verifier/.
NETWORK_CLIENTS: tuple[str, ...] = ()

_PROBE = """
import importlib, json, pkgutil, sys
names = []
for package in sys.argv[1:]:
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + "."):
        if info.name not in {skip}:
            importlib.import_module(info.name)
            names.append(info.name)
print(json.dumps({{"imported": names, "modules": sorted(sys.modules)}}))
"""


def _imported(*packages: str) -> tuple[list[str], set[str]]:
    code = _PROBE.format(skip=repr(set(NETWORK_CLIENTS)))
    done = subprocess.run(
        [sys.executable, "-c", code, *packages], capture_output=True, env=cli_env(), timeout=120, check=True
    )
    report = json.loads(done.stdout)
    return report["imported"], {name.split(".")[0] for name in report["modules"]}


def test_guest_side_imports_no_broker_stack() -> None:
    imported, top_level = _imported("kbs_protocol", "attestation_agent", "guest", "verifier")
    assert "attestation_agent.kbs_client" in imported
    assert "guest.cli" in imported
    assert "verifier.cli" in imported
    assert not top_level & set(BROKER_STACK), sorted(top_level & set(BROKER_STACK))


def test_agent_and_guest_need_no_httpx() -> None:
    _, top_level = _imported("kbs_protocol", "attestation_agent", "guest")
    assert "httpx" not in top_level
    assert "regorus" not in top_level


def test_verification_needs_no_rego_engine() -> None:
    code = "import sys, verifier, verifier.cli, verifier.appraisal; print('regorus' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=cli_env(), timeout=60, check=True)
    assert done.stdout.strip() == b"False"


def test_detection_imports_only_the_tee_found(tmp_path: Path) -> None:
    """No TEE under the sysroot: detection settles on the sample attester without importing any TEE module."""
    code = (
        "import sys; from pathlib import Path; from attestation_agent import attesters\n"
        f"print(attesters.detect(Path({str(tmp_path)!r})).tee)\n"
        "print(sorted(m for m in sys.modules if m.startswith('attestation_agent.attesters.')))"
    )
    env = {k: v for k, v in cli_env().items() if k != "VERITEE_TPM_TCTI"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60, check=True)
    tee, modules = done.stdout.decode().splitlines()
    assert tee == "sample"
    assert modules == "['attestation_agent.attesters.sample']"
