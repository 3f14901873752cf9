"""`verifier verify --tee snp` (docs/cli.md, docs/evidence.md) on the real vectors."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from tests.conftest import run_cli


def test_verify_vlek_report_at_2025_06_01(snp_vectors: Path) -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "snp", str(snp_vectors / "trustee/test-vlek-report.bin"),
        "--cert", str(snp_vectors / "trustee/test-vlek.der"), "--at", "2025-06-01T00:00:00Z",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["tee"] == "snp"
    assert (result["claims"]["signing_key"], result["claims"]["report_version"]) == ("vlek", 3)


def test_verify_vlek_report_today_is_certificate_expired(snp_vectors: Path) -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "snp", str(snp_vectors / "trustee/test-vlek-report.bin"),
        "--cert", str(snp_vectors / "trustee/test-vlek.der"), "--at", "2026-11-27T00:00:00Z",
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "certificate_expired"


def test_verify_with_collateral_folder_and_report_data(snp_vectors: Path) -> None:
    """--collateral takes a folder and recognises the VCEK (and the roots, ignored) by content."""
    done = run_cli(
        "verifier", "verify", "--tee", "snp", str(snp_vectors / "go-sev-guest/attestation.bin"),
        "--collateral", str(snp_vectors / "go-sev-guest"), "--report-data", "0102030405",
        "--at", "2026-11-27T00:00:00Z",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert json.loads(done.stdout)["claims"]["debug"] is True
    wrong = run_cli(
        "verifier", "verify", "--tee", "snp", str(snp_vectors / "go-sev-guest/attestation.bin"),
        "--collateral", str(snp_vectors / "go-sev-guest"), "--report-data", "0102030406",
        "--at", "2026-11-27T00:00:00Z",
    )  # fmt: skip
    assert wrong.returncode == 1
    assert json.loads(wrong.stdout)["error"]["reason"] == "report_data_mismatch"


def test_pem_vcek_under_warnings_as_errors(snp_vectors: Path, tmp_path: Path) -> None:
    """AMD's VCEKs have serial number 0, on which cryptography warns: a PEM VCEK loads under the same warning
    filter as a DER one, so `python -W error` prints the claims, not a CryptographyDeprecationWarning traceback."""
    der = (snp_vectors / "go-sev-guest/vcek.testcer").read_bytes()
    pem = tmp_path / "vcek.pem"
    pem.write_bytes(ssl.DER_cert_to_PEM_cert(der).encode())
    done = run_cli(
        "verifier", "verify", "--tee", "snp", str(snp_vectors / "go-sev-guest/attestation.bin"),
        "--cert", str(pem), "--at", "2026-11-27T00:00:00Z",
        env={"PYTHONWARNINGS": "error"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert b"Warning" not in done.stderr
    assert json.loads(done.stdout)["claims"]["product"] == "Milan"
