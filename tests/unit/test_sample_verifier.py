"""The sample TEE through the verifier library and the `verifier` CLI."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier
from tests.conftest import run_cli
from verifier import FormatError, Options, Reason, VerificationError

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def evidence(report_data: bytes = b"\x01\x02") -> dict[str, str]:
    return {"svn": "1", "report_data": base64.b64encode(report_data).decode()}


def test_sample_verifies_and_binds() -> None:
    result = verifier.verify("sample", evidence(), Options(at=NOW, report_data=b"\x01\x02"))
    assert result.to_json() == {"tee": "sample", "claims": {"svn": "1", "report_data": "0102"}}


def test_sample_report_data_mismatch() -> None:
    with pytest.raises(VerificationError) as info:
        verifier.verify("sample", evidence(), Options(at=NOW, report_data=b"\x01\x03"))
    assert info.value.reason is Reason.REPORT_DATA_MISMATCH
    assert "0102" in info.value.detail
    assert "0103" in info.value.detail


BAD_SAMPLE = {
    "not_json": b"{not json",
    "array": b"[1, 2]",
    "svn_not_string": json.dumps({"svn": 1, "report_data": ""}).encode(),
    "report_data_not_base64": json.dumps({"svn": "1", "report_data": "***"}).encode(),
    "report_data_too_long": json.dumps({"svn": "1", "report_data": base64.b64encode(bytes(65)).decode()}).encode(),
    "missing_report_data": json.dumps({"svn": "1"}).encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_SAMPLE))
def test_sample_malformed(name: str) -> None:
    with pytest.raises(FormatError) as info:
        verifier.verify("sample", BAD_SAMPLE[name], Options(at=NOW))
    assert info.value.reason is Reason.MALFORMED_EVIDENCE


def test_unknown_tee() -> None:
    with pytest.raises(FormatError) as info:
        verifier.verify("sgx", b"{}", Options(at=NOW))
    assert info.value.reason is Reason.UNSUPPORTED_FORMAT


def test_options_need_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Options(at=datetime(2026, 1, 1))


def test_cli_verify_sample(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(evidence()))
    done = run_cli("verifier", "verify", "--tee", "sample", str(path), "--report-data", "0102")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"tee": "sample", "claims": {"svn": "1", "report_data": "0102"}}


def test_cli_verify_mismatch_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(evidence()))
    done = run_cli("verifier", "verify", "--tee", "sample", str(path), "--report-data", "ff")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "report_data_mismatch"


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--tee", "sample", "/nonexistent/evidence"],
        ["verify", "--tee", "sample", "EVIDENCE", "--report-data", "zz"],
        ["verify", "--tee", "sample", "EVIDENCE", "--at", "yesterday"],
        ["verify", "--tee", "nope", "EVIDENCE"],
        [],
    ],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(evidence()))
    done = run_cli("verifier", *[str(path) if a == "EVIDENCE" else a for a in args])
    assert done.returncode == 2, done.stderr


def test_cli_help() -> None:
    for script in ("verifier", "kbs", "attestation-agent"):
        done = run_cli(script, "--help")
        assert done.returncode == 0
        assert b"usage" in done.stdout
