"""The full RCAR flow with TPM evidence from a real software TPM: `kbs serve` and `attestation-agent
get-resource` as separate processes, the agent's TPM reached through VERITEE_TPM_TCTI (swtpm)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from attestation_agent.attesters.tpm import TpmAttester

from tests._swtpm import Swtpm
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer

pytestmark = pytest.mark.swtpm

SECRET = b"tpm-released secret"


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[Swtpm]:
    with Swtpm(tmp_path / "swtpm") as started:
        yield started


@pytest.fixture
def kbs(tmp_path: Path) -> Iterator[KbsServer]:
    with KbsServer(tmp_path / "kbs", allow_sample=False) as server:
        server.admin.put_resource("default/key/1", SECRET)
        yield server


def _ak_sha256(tpm: Swtpm) -> str:
    evidence = TpmAttester(tpm.tcti).evidence(bytes(32))
    return hashlib.sha256(base64.b64decode(str(evidence["ak_public"]))).hexdigest()


def _get(kbs: KbsServer, tpm: Swtpm, *extra: str) -> tuple[int, bytes, str]:
    done = run_cli(
        "attestation-agent", "get-resource", "--kbs", kbs.url, "kbs:///default/key/1", *extra,
        env={"VERITEE_TPM_TCTI": tpm.tcti},
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr.decode()


def test_tpm_guest_with_allowlisted_ak_and_known_pcrs_gets_the_secret(kbs: KbsServer, tpm: Swtpm) -> None:
    kbs.admin.put_reference_value("tpm_ak_sha256", [_ak_sha256(tpm)])
    kbs.admin.put_reference_value("tpm_pcr0", ["00" * 32])  # swtpm: no firmware measured anything
    code, out, err = _get(kbs, tpm)
    assert code == 0, err
    assert out == SECRET


def test_tpm_guest_with_unknown_ak_is_refused(kbs: KbsServer, tpm: Swtpm) -> None:
    kbs.admin.put_reference_value("tpm_pcr0", ["00" * 32])
    code, out, err = _get(kbs, tpm)
    assert code == 1
    assert out == b""
    assert "403" in err or "denies" in err


def test_tpm_guest_with_unexpected_pcr_is_refused(kbs: KbsServer, tpm: Swtpm) -> None:
    kbs.admin.put_reference_value("tpm_ak_sha256", [_ak_sha256(tpm)])
    kbs.admin.put_reference_value("tpm_pcr0", ["11" * 32])
    code, _, err = _get(kbs, tpm)
    assert code == 1
    assert "denies" in err


def test_init_data_is_bound_in_pcr8(kbs: KbsServer, tpm: Swtpm, tmp_path: Path) -> None:
    kbs.admin.put_reference_value("tpm_ak_sha256", [_ak_sha256(tpm)])
    init_data = tmp_path / "init-data.toml"
    body = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = "package agent_policy"\n'
    init_data.write_text(body)
    # PCR8 after binding: SHA-256(32 zero bytes || SHA-256(body)) (docs/protocol.md, init-data binding).
    pcr8 = hashlib.sha256(bytes(32) + hashlib.sha256(body.encode()).digest()).hexdigest()
    kbs.admin.put_reference_value("tpm_pcr8", [pcr8])
    code, out, err = _get(kbs, tpm, "--init-data", str(init_data))
    assert code == 0, err
    assert out == SECRET
