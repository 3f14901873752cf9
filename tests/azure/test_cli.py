"""`verifier verify --tee az-snp-vtpm | az-tdx-vtpm` (docs/cli.md, docs/evidence.md) on the real vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.azure.conftest import AZURE, CHALLENGE, V2_REPORT_DATA, encode, load
from tests.conftest import run_cli

AT = "2026-11-27T00:00:00Z"


def test_verify_snp_vector_v1() -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "az-snp-vtpm", str(AZURE / "az-snp-vtpm/evidence-v1.json"),
        "--report-data", CHALLENGE.hex(), "--at", AT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["tee"] == "az-snp-vtpm"
    assert sorted(result["claims"]) == ["hcl", "snp", "tpm"]
    assert result["claims"]["tpm"]["report_data"] == CHALLENGE.hex()


def test_verify_snp_vector_v2_with_its_48_byte_report_data() -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "az-snp-vtpm", str(AZURE / "az-snp-vtpm/evidence-v2.json"),
        "--report-data", V2_REPORT_DATA.hex(), "--at", AT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["claims"]["hcl"]["user_data"].startswith(V2_REPORT_DATA.hex())


def test_wrong_report_data_exits_1_with_the_reason() -> None:
    done = run_cli(
        "verifier", "verify", "--tee", "az-snp-vtpm", str(AZURE / "az-snp-vtpm/evidence-v1.json"),
        "--report-data", "00", "--at", AT,
    )  # fmt: skip
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["reason"] == "report_data_mismatch"
    assert "extraData" in error["detail"]


def test_cert_supplies_the_vcek_that_signs(tmp_path: Path) -> None:
    """`--cert VCEK`: the evidence's own VCEK is another chip's (the v2 vector's), so the report's signature fails;
    the right VCEK given with --cert (PEM) is the one that signs."""
    document = load("az-snp-vtpm/evidence-v1.json")
    vcek = base64.urlsafe_b64decode(str(document["vcek"]))
    (tmp_path / "vcek.pem").write_text(
        "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(vcek).decode() + "-----END CERTIFICATE-----\n"
    )
    (tmp_path / "evidence.json").write_bytes(encode({**document, "vcek": load("az-snp-vtpm/evidence-v2.json")["vcek"]}))
    args = ("verifier", "verify", "--tee", "az-snp-vtpm", str(tmp_path / "evidence.json"), "--report-data",
            CHALLENGE.hex(), "--at", AT)  # fmt: skip
    done = run_cli(*args)
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "signature_invalid"
    done = run_cli(*args, "--cert", str(tmp_path / "vcek.pem"))
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["claims"]["snp"]["signing_key"] == "vcek"


def test_tdx_vector_without_collateral(vectors: Path) -> None:
    evidence = str(AZURE / "az-tdx-vtpm/evidence-v1.json")
    done = run_cli("verifier", "verify", "--tee", "az-tdx-vtpm", evidence, "--report-data", CHALLENGE.hex())
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "collateral_missing"
    done = run_cli(
        "verifier", "verify", "--tee", "az-tdx-vtpm", evidence, "--collateral", str(vectors / "tdx"),
        "--at", "2025-01-01T00:00:00Z",
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "fmspc_mismatch"
    # Accepting expired collateral does not make collateral for other platforms fit.
    done = run_cli("verifier", "verify", "--tee", "az-tdx-vtpm", evidence, "--collateral", str(vectors / "tdx"),
                   "--allow-expired-collateral")  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["reason"] == "fmspc_mismatch"
