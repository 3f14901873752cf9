"""Init-data end to end: `attestation-agent serve --initdata` binds it (TPM PCR 8 on swtpm) or checks it (TDX
MRCONFIGID on the fake device) at start-up and refuses to start on a mismatch; every attestation carries it; the
broker exposes its [data] as init_data_claims, and a resource policy reading them grants or denies."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from attestation_agent.attesters.tpm import TpmAttester

from tests._swtpm import Swtpm
from tests.agent._sealing import seal, signing_key, vault
from tests.conftest import run_cli
from tests.integration._agent_service import AgentService
from tests.integration._kbs_server import KbsServer
from tests.tdx.fake_device import FakeTdxDevice
from tests.tdx.make_test_chain import make_pki

DB = 'version = "0.1.0"\nalgorithm = "sha256"\n\n[data]\nrole = "db"\n"aa.toml" = "url = 1"\n'
WEB = DB.replace('"db"', '"web"')
SECRET = b"for the database pod only"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def policy(role: str) -> str:
    return f"""package policy
import rego.v1
default allow := false
allow if {{
    every _, submod in input.submods {{ submod["ear.status"] == "affirming" }}
    input.submods.cpu0["ear.veraison.annotated-evidence"].init_data_claims.role == "{role}"
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
        ak = hashlib.sha256(base64.b64decode(str(evidence["ak_public"]))).hexdigest()
        server.admin.put_reference_value("tpm_ak_sha256", [ak])
        server.admin.put_reference_value("tpm_pcr0", ["00" * 32])
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.set_resource_policy(policy("db"))
        yield server


@pytest.mark.swtpm
def test_tpm_init_data_bound_at_start_and_read_by_policy(tmp_path: Path, tpm: Swtpm, kbs: KbsServer) -> None:
    (tmp_path / "db.toml").write_text(DB)
    (tmp_path / "web.toml").write_text(WEB)
    env = {"VERITEE_TPM_TCTI": tpm.tcti}
    with AgentService(kbs.url, tmp_path, "--initdata", str(tmp_path / "db.toml"), env=env) as agent:
        pcr8 = hashlib.sha256(bytes(32) + hashlib.sha256(DB.encode()).digest()).digest()
        assert TpmAttester(tpm.tcti).pcr(8) == pcr8
        response = agent.get("/cdh/resource/default/key/1")
        assert response.status_code == 200, response.text
        assert response.content == SECRET
        annotated = agent.annotated_evidence()
        assert annotated["init_data_claims"] == {"role": "db", "aa.toml": "url = 1"}
        assert annotated["init_data"] == hashlib.sha256(DB.encode()).hexdigest()
        assert annotated["tpm"]["pcrs"]["sha256"]["8"] == pcr8.hex()

        kbs.admin.set_resource_policy(policy("web"))  # the same token, a policy wanting other init-data
        denied = agent.get("/cdh/resource/default/key/1")
        assert denied.status_code == 403
        kbs.admin.set_resource_policy(policy("db"))

    # The TPM is bound to DB now: the same init-data binds again without another extend; other init-data cannot.
    done = run_cli("attestation-agent", "get-resource", "--kbs", kbs.url, "kbs:///default/key/1",
                   "--initdata", str(tmp_path / "db.toml"), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == SECRET
    assert TpmAttester(tpm.tcti).pcr(8) == pcr8
    refused = run_cli("attestation-agent", "serve", "--kbs", kbs.url, "--listen", "127.0.0.1:0",
                      "--initdata", str(tmp_path / "web.toml"), env=env)  # fmt: skip
    assert refused.returncode == 1
    assert b"refusing to start: init_data_mismatch: PCR 8 is " + pcr8.hex().encode() in refused.stderr
    sealed = seal(vault("kbs:///default/key/1"), signing_key()[0], "kbs:///default/key/1").encode()
    annotation = {
        "kid": "kbs:///default/key/1",
        "wrapped_data": b64(bytes(48)),
        "iv": b64(bytes(12)),
        "wrap_type": "A256GCM",
    }
    unwrap = {"op": "keyunwrap", "keyunwrapparams": {"annotation": b64(json.dumps(annotation).encode())}}
    for command, stdin in (
        (["get-resource", "kbs:///default/key/1"], b""),
        (["unseal", "-"], sealed),
        (["keyprovider"], json.dumps(unwrap).encode()),
    ):
        done = run_cli("attestation-agent", *command[:1], "--kbs", kbs.url, *command[1:],
                       "--initdata", str(tmp_path / "web.toml"), input=stdin, env=env)  # fmt: skip
        assert done.returncode == 1, command
        assert b"init_data_mismatch" in done.stderr, done.stderr


def test_tdx_init_data_mismatch_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "db.toml").write_text(DB.replace("sha256", "sha384"))
    root = tmp_path / "guest"
    with FakeTdxDevice(root, make_pki(), mr_config_id=b"\x01" * 48):
        done = run_cli("attestation-agent", "serve", "--kbs", "http://127.0.0.1:9", "--listen", "127.0.0.1:0",
                       "--initdata", str(tmp_path / "db.toml"), env={"VERITEE_SYSROOT": str(root)})  # fmt: skip
    assert done.returncode == 1
    assert b"refusing to start: init_data_mismatch: MRCONFIGID is " + b"01" * 48 in done.stderr
