"""End to end: `attestation-agent get-resource` (and `serve`) on an Azure CVM (swtpm provisioned as the paravisor
would, a fake IMDS) against a real `kbs serve` that trusts the test-only AMD and Intel roots, under the shipped
default policies of az-snp-vtpm and az-tdx-vtpm."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tpm2_pytss as tss
from attestation_agent.attesters.tpm import TpmAttester

from tests._swtpm import Swtpm
from tests.azure._paravisor import FakeImds, Provisioned, provision
from tests.conftest import run_cli
from tests.integration._agent_service import AgentService
from tests.integration._helpers import aael_pcr
from tests.integration._kbs_server import KbsServer
from tests.snp.make_test_chain import Chain, Vek, make_chain, make_vek
from tests.tdx.make_test_chain import MRTD, DcapPki, make_pki

pytestmark = pytest.mark.swtpm

SECRET = b"released to an Azure CVM"
INIT_DATA = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = "package agent_policy"\n'


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain("Milan")


@pytest.fixture(scope="module")
def vek(chain: Chain) -> Vek:
    return make_vek(chain)  # REPORTED_TCB 3, 0, 8, 115


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


@pytest.fixture(scope="module")
def kbs(tmp_path_factory: pytest.TempPathFactory, chain: Chain, pki: DcapPki) -> Iterator[KbsServer]:
    folder = tmp_path_factory.mktemp("kbs")
    (folder / "amd.pem").write_bytes(chain.trust_pem())
    (folder / "intel.pem").write_bytes(pki.root_pem)
    collateral = folder / "collateral"
    collateral.mkdir()
    for i, document in enumerate(pki.collateral()):
        (collateral / f"doc{i}").write_bytes(document)
    config = {
        "verifier": {
            "trust": {"snp": [str(folder / "amd.pem")], "tdx": [str(folder / "intel.pem")]},
            "collateral": [str(collateral)],
            "offline": True,
        }
    }
    with KbsServer(folder, config=config, allow_sample=False) as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("az_snp_measurement", [bytes(range(48)).hex()])
        for name, value in {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}.items():
            server.admin.put_reference_value(f"snp_min_tcb_{name}", [str(value)])
        server.admin.put_reference_value("az_tdx_mr_td", [MRTD.hex()])
        server.admin.put_reference_value("az_pcr0", ["00" * 32])  # swtpm: no firmware measured anything
        yield server


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[Swtpm]:
    with Swtpm(tmp_path / "swtpm") as started:
        yield started


def _get(kbs: KbsServer, tpm: Swtpm, imds: FakeImds, *extra: str) -> tuple[int, bytes, str]:
    env = {"VERITEE_TPM_TCTI": tpm.tcti, "VERITEE_AZURE_IMDS_URL": imds.url, "VERITEE_AZURE_HCL_WAIT": "0"}
    done = run_cli("attestation-agent", "get-resource", "--kbs", kbs.url, "kbs:///default/key/1", *extra, env=env)
    return done.returncode, done.stdout, done.stderr.decode()


def _snp_vm(tpm: Swtpm, chain: Chain, vek: Vek) -> Provisioned:
    return provision(tpm, "snp", chain=chain, vek=vek)


def test_auth_accepts_both_azure_tees(kbs: KbsServer) -> None:
    for tee in ("az-snp-vtpm", "az-tdx-vtpm"):
        response = httpx.post(f"{kbs.url}/kbs/v0/auth", json={"version": "0.4.0", "tee": tee, "extra-params": ""})
        assert response.status_code == 200, response.text
        assert "nonce" in response.json()


def test_snp_cvm_gets_the_secret(kbs: KbsServer, tpm: Swtpm, chain: Chain, vek: Vek) -> None:
    with FakeImds(_snp_vm(tpm, chain, vek)) as imds:
        code, out, err = _get(kbs, tpm, imds)
        assert imds.requests == ["GET /metadata/THIM/amd/certification"]  # the VCEK, where guest-components gets it
    assert code == 0, err
    assert out == SECRET


def test_tdx_cvm_gets_the_secret(kbs: KbsServer, tpm: Swtpm, pki: DcapPki) -> None:
    with FakeImds(provision(tpm, "tdx", pki=pki)) as imds:
        code, out, err = _get(kbs, tpm, imds)
        assert imds.requests == ["POST /acc/tdquote"]
    assert code == 0, err
    assert out == SECRET


def test_snp_cvm_with_an_unknown_pcr_is_refused(kbs: KbsServer, tpm: Swtpm, chain: Chain, vek: Vek) -> None:
    provisioned = _snp_vm(tpm, chain, vek)
    esapi = tss.ESAPI(tpm.tcti)
    try:  # something the reference values do not know was measured into PCR 0
        digests = tss.TPML_DIGEST_VALUES(
            [tss.TPMT_HA(hashAlg=tss.TPM2_ALG.SHA256, digest=tss.TPMU_HA(sha256=bytes(32)))]
        )
        esapi.pcr_extend(tss.ESYS_TR.PCR0, digests, session1=tss.ESYS_TR.PASSWORD)
    finally:
        esapi.close()
    with FakeImds(provisioned) as imds:
        code, out, err = _get(kbs, tpm, imds)
    assert code == 1
    assert out == b""
    assert "denies" in err or "403" in err


def test_init_data_is_bound_in_pcr8(kbs: KbsServer, tpm: Swtpm, chain: Chain, vek: Vek, tmp_path: Path) -> None:
    init_data = tmp_path / "init-data.toml"
    init_data.write_text(INIT_DATA)
    other = tmp_path / "other.toml"
    other.write_text(INIT_DATA.replace("agent_policy", "other_policy"))
    with FakeImds(_snp_vm(tpm, chain, vek)) as imds:
        code, out, err = _get(kbs, tpm, imds, "--init-data", str(init_data))
        assert code == 0, err
        assert out == SECRET
        # PCR 8 now holds the first init-data: a guest claiming other init-data is refused by the verifier.
        code, out, err = _get(kbs, tpm, imds, "--init-data", str(other))
    assert code == 1
    assert out == b""
    assert "init_data_mismatch" in err


def test_runtime_measurements_extend_pcr23_and_reach_the_broker(
    kbs: KbsServer, tpm: Swtpm, chain: Chain, vek: Vek, tmp_path: Path
) -> None:
    """On Azure the agent binds init-data in PCR 8 and its runtime measurements (`attestation-agent extend`,
    `POST /aa/aael`) extend PCR 23, never PCR 17 (guest-components' register elsewhere, which a locality-0 guest
    cannot extend); the vTPM quote carries both to the broker: the token's claims show them, and a reference
    value for PCR 23 releases the secret only once the measurements are made."""
    init_data = tmp_path / "init-data.toml"
    init_data.write_text(INIT_DATA)
    image = "docker.io/library/busybox@sha256:" + "ab" * 32
    measured = aael_pcr([("example.org", "boot", "ready"), ("github.com/confidential-containers", "pull-image", image)])
    root = tmp_path / "guest"
    provisioned = _snp_vm(tpm, chain, vek)
    pcr17 = TpmAttester(tpm.tcti).pcr(17)
    with FakeImds(provisioned) as imds:
        env = {"VERITEE_TPM_TCTI": tpm.tcti, "VERITEE_AZURE_IMDS_URL": imds.url, "VERITEE_AZURE_HCL_WAIT": "0",
               "VERITEE_SYSROOT": str(root)}  # fmt: skip
        kbs.admin.put_reference_value("az_pcr23", [measured.hex()])
        try:
            with AgentService(kbs.url, tmp_path, "--init-data", str(init_data), env=env) as agent:
                assert agent.get("/cdh/resource/default/key/1").status_code == 403  # nothing measured yet
                pcrs = agent.annotated_evidence()["az-snp-vtpm"]["tpm"]["pcrs"]["sha256"]
                assert pcrs["23"] == "00" * 32
                assert pcrs["8"] == hashlib.sha256(bytes(32) + hashlib.sha256(INIT_DATA.encode()).digest()).hexdigest()

                done = run_cli("attestation-agent", "extend", "--domain", "example.org", "--operation", "boot",
                               "--content", "ready", env=env)  # fmt: skip
                assert done.returncode == 0, done.stderr.decode()
                event = {"domain": "github.com/confidential-containers", "operation": "pull-image", "content": image}
                response = agent.http.post("/aa/aael", json=event)
                assert response.status_code == 200, response.text  # and the cached token is dropped

                response = agent.get("/cdh/resource/default/key/1")
                assert response.status_code == 200, response.text
                assert response.content == SECRET
                annotated = agent.annotated_evidence()
                after = annotated["az-snp-vtpm"]["tpm"]["pcrs"]["sha256"]
                assert after["23"] == measured.hex()
                assert after["17"] == pcr17.hex()  # untouched
                assert after["8"] == pcrs["8"]
                assert annotated["init_data"] == hashlib.sha256(INIT_DATA.encode()).hexdigest()
        finally:
            kbs.admin.delete_reference_value("az_pcr23")
    assert (root / "run/attestation-agent/eventlog").stat().st_size > 0
