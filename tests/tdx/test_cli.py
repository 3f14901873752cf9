"""`verifier verify --tee tdx` and `verifier eventlog --kind ccel` on the real vectors (docs/cli.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_verify_quote_4_with_go_tdx_guest_folder(vectors: Path) -> None:
    done = run_cli(
        "verifier",
        "verify",
        "--tee",
        "tdx",
        str(vectors / "tdx" / "trustee" / "tdx_quote_4.dat"),
        "--collateral",
        str(vectors / "tdx" / "go-tdx-guest"),
        "--at",
        "2023-06-20T00:00:00Z",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["tee"] == "tdx"
    assert out["claims"]["tcb_status"] == "UpToDate"
    assert out["claims"]["debug"] is True


def test_verify_quote_6_folders_with_several_fmspcs(vectors: Path) -> None:
    """Both vector folders at once: the TCB info for the PCK's FMSPC is chosen among three."""
    done = run_cli(
        "verifier",
        "verify",
        "--tee",
        "tdx",
        str(vectors / "tdx" / "trustee" / "tdx_quote_6.dat"),
        "--collateral",
        str(vectors / "tdx" / "trustee"),
        "--collateral",
        str(vectors / "tdx" / "go-tdx-guest"),
        "--at",
        "2026-11-27T00:00:00Z",
        "--allow-expired-collateral",
    )
    assert done.returncode == 0, done.stderr
    claims = json.loads(done.stdout)["claims"]
    assert claims["tcb_status"] == "OutOfDate"
    assert claims["collateral_expired"] is True


def test_verify_expired_collateral_fails_with_reason(vectors: Path) -> None:
    done = run_cli(
        "verifier",
        "verify",
        "--tee",
        "tdx",
        str(vectors / "tdx" / "trustee" / "tdx_quote_6.dat"),
        "--collateral",
        str(vectors / "tdx"),
        "--at",
        "2026-11-27T00:00:00Z",
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "collateral_expired"


def test_eventlog_ccel(vectors: Path) -> None:
    done = run_cli("verifier", "eventlog", str(vectors / "tdx" / "trustee" / "CCEL_data_ovmf"), "--kind", "ccel")
    assert done.returncode == 0, done.stderr
    registers = json.loads(done.stdout)["registers"]["sha384"]
    assert registers["rtmr2"].startswith("94eaf7a7bf398ed8")
