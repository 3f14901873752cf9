"""Runtime measurements on a real software TPM, end to end: `attestation-agent extend` and `POST /aa/aael` extend
PCR 23 and log CoCo AAEL records; the evidence carries them; the broker's verifier replays them and the token's
claims name them, so a resource policy can require that an image was measured; an altered record fails with
eventlog_mismatch; bad events are refused with 400 and nothing is extended."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attestation_agent.attesters.tpm import TpmAttester

from tests._swtpm import Swtpm
from tests.conftest import run_cli
from tests.integration._agent_service import AgentService
from tests.integration._helpers import aael_pcr
from tests.integration._kbs_server import KbsServer

pytestmark = pytest.mark.swtpm

IMAGE = "docker.io/library/busybox@sha256:" + "ab" * 32
DOMAIN = "github.com/confidential-containers"
SECRET = b"released only to a guest that measured the image"
# A resource policy on top of the default: the AAEL must show the image pulled.
POLICY = f"""package policy
import rego.v1
default allow := false
allow if {{
    every _, submod in input.submods {{ submod["ear.status"] == "affirming" }}
    some event in input.submods.cpu0["ear.veraison.annotated-evidence"].tpm.aael
    event.domain == "{DOMAIN}"
    event.operation == "pull-image"
    event.content == "{IMAGE}"
}}
"""


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[Swtpm]:
    with Swtpm(tmp_path / "swtpm") as started:
        yield started


@pytest.fixture
def kbs(tmp_path: Path, tpm: Swtpm) -> Iterator[KbsServer]:
    with KbsServer(tmp_path / "kbs", allow_sample=False) as server:
        evidence = TpmAttester(tpm.tcti).evidence(bytes(32))
        server.admin.put_reference_value(
            "tpm_ak_sha256", [hashlib.sha256(base64.b64decode(str(evidence["ak_public"]))).hexdigest()]
        )
        server.admin.put_reference_value("tpm_pcr0", ["00" * 32])
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.set_resource_policy(POLICY)
        yield server


def tpm_claims(agent: AgentService) -> dict[str, Any]:
    tpm: dict[str, Any] = agent.annotated_evidence()["tpm"]
    return tpm


def test_measured_image_is_in_the_token_and_unlocks_the_resource(tmp_path: Path, tpm: Swtpm, kbs: KbsServer) -> None:
    root = tmp_path / "guest"
    env = {"VERITEE_TPM_TCTI": tpm.tcti, "VERITEE_SYSROOT": str(root)}
    with AgentService(kbs.url, tmp_path, env=env) as agent:
        before = tpm_claims(agent)
        assert "aael" not in before  # no runtime event yet: no log
        assert agent.get("/cdh/resource/default/key/1").status_code == 403  # the policy wants the image measured

        done = run_cli("attestation-agent", "extend", "--domain", "example.org", "--operation", "boot",
                       "--content", "ready", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        response = agent.http.post("/aa/aael", json={"domain": DOMAIN, "operation": "pull-image", "content": IMAGE})
        assert response.status_code == 200, response.text
        assert response.json() == {"success": "true"}

        claims = tpm_claims(agent)  # the measurement dropped the old token: this one is fresh
        assert claims["pcr_replay_ok"] is True
        assert claims["aael"] == [
            {"register": "23", "domain": "example.org", "operation": "boot", "content": "ready"},
            {"register": "23", "domain": DOMAIN, "operation": "pull-image", "content": IMAGE},
        ]
        pcr23 = aael_pcr([("example.org", "boot", "ready"), (DOMAIN, "pull-image", IMAGE)])
        assert claims["pcrs"]["sha256"]["23"] == pcr23.hex()
        response = agent.get("/cdh/resource/default/key/1")
        assert response.status_code == 200, response.text
        assert response.content == SECRET

        # Bad events: 400 with the reason, nothing extended or logged, the service keeps serving.
        log = root / "run/attestation-agent/eventlog"
        size = log.stat().st_size
        bad = [
            (b'{"domain": "d", "operation": "o"}', "field content is missing"),
            (b'{"domain": "a b", "operation": "o", "content": "x"}', "forbidden character"),
            (b'{"domain": "d", "operation": "o", "content": "a\\nb"}', "control character"),
            (b'{"domain": "d", "operation": "o", "content": 5}', "field content is int"),
            (b"[]", "not a JSON object"),
            (b"not json", "not JSON"),
        ]
        for body, message in bad:
            response = agent.http.post("/aa/aael", content=body)
            assert response.status_code == 400, body
            assert message in response.text, response.text
        assert log.stat().st_size == size
        assert tpm_claims(agent)["pcrs"]["sha256"]["23"] == pcr23.hex()

    # The log with one record altered: the broker's verifier refuses the evidence.
    log.write_bytes(log.read_bytes().replace(b"busybox", b"busyb0x"))
    done = run_cli("attestation-agent", "get-resource", "--kbs", kbs.url, "kbs:///default/key/1", env=env)
    assert done.returncode == 1
    assert b"eventlog_mismatch" in done.stderr


def test_sample_tee_has_no_runtime_register(tmp_path: Path) -> None:
    done = run_cli("attestation-agent", "extend", "--domain", "d", "--operation", "o", "--content", "c",
                   "--tee", "sample")  # fmt: skip
    assert done.returncode == 1
    assert b"no runtime measurement register" in done.stderr


def test_extend_cli_refuses_a_bad_event(tmp_path: Path, tpm: Swtpm) -> None:
    env = {"VERITEE_TPM_TCTI": tpm.tcti, "VERITEE_SYSROOT": str(tmp_path / "guest")}
    done = run_cli("attestation-agent", "extend", "--domain", "bad domain", "--operation", "o", "--content", "c",
                   env=env)  # fmt: skip
    assert done.returncode == 2
    assert b"forbidden character" in done.stderr
    assert not (tmp_path / "guest/run/attestation-agent/eventlog").exists()
