"""`verifier eventlog FILE --kind ccel|tcg2` prints the parsed log's JSON, or a reason code and exits 1."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

from ._expected import CCEL_OVMF, CCEL_OVMF_EVENTS, CCEL_OVMF_RTMRS, RHEL8


def test_cli_prints_ccel_replay(vectors: Path) -> None:
    proc = run_cli("verifier", "eventlog", str(vectors / CCEL_OVMF), "--kind", "ccel")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "ccel"
    assert len(doc["events"]) == CCEL_OVMF_EVENTS
    assert doc["registers"] == {"sha384": CCEL_OVMF_RTMRS}


def test_cli_prints_tcg2_replay(vectors: Path) -> None:
    proc = run_cli("verifier", "eventlog", str(vectors / RHEL8), "--kind", "tcg2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["registers"]["sha1"]["0"] == "0f2d3a2a1adaa479aeeca8f5df76aadc41b862ea"


def test_cli_rejects_a_truncated_log(vectors: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.bin"
    bad.write_bytes((vectors / RHEL8).read_bytes()[:1000])
    proc = run_cli("verifier", "eventlog", str(bad), "--kind", "tcg2")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["reason"] == "malformed_evidence"
    assert "event[" in error["detail"]
