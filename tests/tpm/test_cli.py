"""`verifier verify --tee tpm` on real evidence: JSON claims on stdout and exit 0, or the error JSON and exit 1."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.conftest import run_cli

from ._gotpm import decode


def _google_evidence(vectors: Path, tmp_path: Path, *, with_certificate: bool = True) -> Path:
    evidence = dict(decode((vectors / "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes()).evidences[1])
    if not with_certificate:
        certificate = base64.b64decode(str(evidence.pop("ak_certificate")))
        (tmp_path / "ak.der").write_bytes(certificate)
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(evidence))
    return path


def test_verify_google_quote(vectors: Path, tmp_path: Path) -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "tpm", str(_google_evidence(vectors, tmp_path)), "--report-data", "9009"
    )
    assert done.returncode == 0, done.stderr.decode()
    document = json.loads(done.stdout)
    assert document["tee"] == "tpm"
    assert document["claims"]["ak_trust"] == "certificate"
    assert document["claims"]["pcr_replay_ok"] is True


def test_verify_with_ak_certificate_given_by_cert_option(vectors: Path, tmp_path: Path) -> None:
    evidence = _google_evidence(vectors, tmp_path, with_certificate=False)
    done = run_cli("verifier", "verify", "--tee", "tpm", str(evidence))
    assert json.loads(done.stdout)["claims"]["ak_trust"] == "none"
    done = run_cli("verifier", "verify", "--tee", "tpm", str(evidence), "--cert", str(tmp_path / "ak.der"))
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["claims"]["ak_trust"] == "certificate"


def test_verify_wrong_nonce_prints_the_reason(vectors: Path, tmp_path: Path) -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "tpm", str(_google_evidence(vectors, tmp_path)), "--report-data", "9008"
    )
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["reason"] == "report_data_mismatch"
    assert "extraData is 9009" in error["detail"]


def test_verify_trustee_evidence(vectors: Path) -> None:
    done = run_cli("verifier", "verify", "--tee", "tpm", str(vectors / "tpm/trustee/tpm_evidence.json"))
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["claims"]["ak_trust"] == "none"
