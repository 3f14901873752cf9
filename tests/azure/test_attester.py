"""The az-snp-vtpm / az-tdx-vtpm attesters on a real software TPM provisioned as Azure's paravisor would
(tests/azure/_paravisor.py), their evidence checked by the verifier."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import tpm2_pytss as tss
from attestation_agent.attesters import AttesterError, detect, get, runtime_log
from attestation_agent.attesters.az_snp_vtpm import AzSnpVtpmAttester
from attestation_agent.attesters.az_tdx_vtpm import AzTdxVtpmAttester
from cryptography.hazmat.primitives import serialization

from tests._swtpm import Swtpm
from tests.azure._paravisor import FakeImds, Provisioned, provision
from tests.conftest import run_cli
from tests.integration._helpers import aael_pcr
from tests.snp.make_test_chain import Chain, Vek, make_chain, make_vek
from tests.tdx.make_test_chain import DcapPki, make_pki
from verifier import Options, Reason, VerifierError, verify

from .conftest import TODAY

pytestmark = pytest.mark.swtpm

REPORT_DATA = hashlib.sha384(b"runtime data").digest()  # what the KBS protocol's runtime digest looks like


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain("Milan")


@pytest.fixture(scope="module")
def vek(chain: Chain) -> Vek:
    return make_vek(chain)


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[Swtpm]:
    with Swtpm(tmp_path / "swtpm") as started:
        yield started


@pytest.fixture
def snp_vm(tpm: Swtpm, chain: Chain, vek: Vek, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provisioned]:
    provisioned = provision(tpm, "snp", chain=chain, vek=vek)
    with FakeImds(provisioned) as imds:
        monkeypatch.setenv("VERITEE_TPM_TCTI", tpm.tcti)
        monkeypatch.setenv("VERITEE_AZURE_IMDS_URL", imds.url)
        monkeypatch.setenv("VERITEE_AZURE_HCL_WAIT", "0")
        yield provisioned


@pytest.fixture
def tdx_vm(tpm: Swtpm, pki: DcapPki, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provisioned]:
    provisioned = provision(tpm, "tdx", pki=pki)
    with FakeImds(provisioned) as imds:
        monkeypatch.setenv("VERITEE_TPM_TCTI", tpm.tcti)
        monkeypatch.setenv("VERITEE_AZURE_IMDS_URL", imds.url)
        monkeypatch.setenv("VERITEE_AZURE_HCL_WAIT", "0")
        yield provisioned


def _verify_snp(evidence: dict[str, object], chain: Chain, **options: object) -> dict[str, object]:
    data = json.dumps(evidence).encode()
    result = verify("az-snp-vtpm", data, Options(at=TODAY, trust={"snp": (chain.trust_pem(),)}, **options))  # type: ignore[arg-type]
    return dict(result.claims)


def test_snp_cvm_is_detected_before_the_plain_tpm(snp_vm: Provisioned) -> None:
    attester = detect(Path("/nonexistent"))
    assert isinstance(attester, AzSnpVtpmAttester)
    assert attester.tee == "az-snp-vtpm"
    with pytest.raises(AttesterError, match="not found"):
        get("az-tdx-vtpm")


@pytest.mark.parametrize("report_type", [3, 7])  # 3: the reserved "TVM" type; 7: no such type
def test_hcl_report_of_an_unknown_type_is_not_an_azure_cvm(
    tpm: Swtpm, chain: Chain, vek: Vek, monkeypatch: pytest.MonkeyPatch, report_type: int
) -> None:
    """Detection reads the type field of the HCL report at NV 0x01400001 (IGVM_REQUEST_DATA.report_type): an HCL
    report of neither type is a plain TPM to the agent."""
    provision(tpm, "snp", chain=chain, vek=vek)
    esapi = tss.ESAPI(tpm.tcti)
    try:
        handle = esapi.tr_from_tpmpublic(0x01400001)
        esapi.nv_write(handle, report_type.to_bytes(4, "little"), 0x4C8, auth_handle=tss.ESYS_TR.OWNER)
    finally:
        esapi.close()
    monkeypatch.setenv("VERITEE_TPM_TCTI", tpm.tcti)
    assert detect(Path("/nonexistent")).tee == "tpm"
    for tee in ("az-snp-vtpm", "az-tdx-vtpm"):
        with pytest.raises(AttesterError, match="not found"):
            get(tee)


def test_plain_tpm_is_not_an_azure_cvm(tpm: Swtpm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERITEE_TPM_TCTI", tpm.tcti)
    assert detect(Path("/nonexistent")).tee == "tpm"


def test_snp_evidence_verifies(snp_vm: Provisioned, chain: Chain) -> None:
    evidence = get("az-snp-vtpm").evidence(REPORT_DATA)
    # Nothing refreshes the report on swtpm: its user-data is not the report data, so version 1.
    assert evidence["version"] == 1
    assert set(evidence) == {"version", "tpm_quote", "hcl_report", "vcek"}
    claims = _verify_snp(evidence, chain, report_data=REPORT_DATA)
    assert claims["tpm"]["report_data"] == REPORT_DATA.hex()  # type: ignore[index]
    assert sorted(claims["tpm"]["pcrs"]["sha256"], key=int) == [str(i) for i in range(24)]  # type: ignore[index]
    # The quote is signed by the paravisor's AK at 0x81000003, the key the HCL report's runtime data carries.
    ak_der = snp_vm.ak.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert claims["tpm"]["ak_sha256"] == hashlib.sha256(ak_der).hexdigest()  # type: ignore[index]
    assert claims["hcl"]["ak_sha256"] == claims["tpm"]["ak_sha256"]  # type: ignore[index]
    with pytest.raises(VerifierError) as caught:
        _verify_snp(evidence, chain, report_data=bytes(48))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH


def test_report_data_is_written_to_nv_0x01400002(snp_vm: Provisioned, tpm: Swtpm) -> None:
    attester = get("az-snp-vtpm")
    attester.evidence(REPORT_DATA)
    attester.evidence(b"short")  # another size: the index is defined again at that size
    esapi = tss.ESAPI(tpm.tcti)
    try:
        handle = esapi.tr_from_tpmpublic(0x01400002)
        public, _ = esapi.nv_read_public(handle)
        assert public.nvPublic.dataSize == 5
        assert bytes(esapi.nv_read(handle, 5, 0, auth_handle=tss.ESYS_TR.OWNER)) == b"short"
    finally:
        esapi.close()


def test_refreshed_report_gives_version_2(tpm: Swtpm, chain: Chain, vek: Vek, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report whose user-data already carries the report data (as the paravisor makes it) is version 2, which
    the verifier holds to its promise."""
    provisioned = provision(tpm, "snp", chain=chain, vek=vek, user_data=REPORT_DATA)
    with FakeImds(provisioned) as imds:
        attester = AzSnpVtpmAttester(tpm.tcti, imds_url=imds.url)
        attester.refresh_seconds = 0
        evidence = attester.evidence(REPORT_DATA)
    assert evidence["version"] == 2
    claims = _verify_snp(evidence, chain, report_data=REPORT_DATA)
    assert claims["hcl"]["user_data"].startswith(REPORT_DATA.hex())  # type: ignore[index]


def test_init_data_is_bound_in_pcr8(snp_vm: Provisioned, chain: Chain) -> None:
    digest = hashlib.sha256(b"init-data toml").digest()
    attester = get("az-snp-vtpm")
    attester.bind_init_data(digest)
    evidence = attester.evidence(REPORT_DATA)
    claims = _verify_snp(evidence, chain, report_data=REPORT_DATA, init_data_digest=digest)
    assert claims["tpm"]["pcrs"]["sha256"]["8"] == hashlib.sha256(bytes(32) + digest).hexdigest()  # type: ignore[index]
    with pytest.raises(VerifierError) as caught:
        _verify_snp(evidence, chain, report_data=REPORT_DATA, init_data_digest=bytes(32))
    assert caught.value.reason is Reason.INIT_DATA_MISMATCH


def test_missing_ak_is_a_clear_error(tpm: Swtpm, chain: Chain, vek: Vek) -> None:
    provision(tpm, "snp", chain=chain, vek=vek)
    esapi = tss.ESAPI(tpm.tcti)
    try:
        esapi.evict_control(tss.ESYS_TR.OWNER, esapi.tr_from_tpmpublic(0x81000003), 0x81000003)
    finally:
        esapi.close()
    attester = AzSnpVtpmAttester(tpm.tcti, imds_url="http://127.0.0.1:9")
    attester.refresh_seconds = 0
    with pytest.raises(AttesterError, match="0x81000003"):
        attester.evidence(REPORT_DATA)


def test_imds_unreachable_is_a_clear_error(tpm: Swtpm, chain: Chain, vek: Vek) -> None:
    provision(tpm, "snp", chain=chain, vek=vek)
    attester = AzSnpVtpmAttester(tpm.tcti, imds_url="http://127.0.0.1:9")
    attester.refresh_seconds = 0
    with pytest.raises(AttesterError, match="IMDS"):
        attester.evidence(REPORT_DATA)


def test_tdx_cvm_evidence_verifies(tdx_vm: Provisioned, pki: DcapPki) -> None:
    attester = detect(Path("/nonexistent"))
    assert isinstance(attester, AzTdxVtpmAttester)
    evidence = attester.evidence(REPORT_DATA)
    assert set(evidence) == {"version", "tpm_quote", "hcl_report", "td_quote"}
    options = Options(at=pki.at, report_data=REPORT_DATA, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)})
    claims = verify("az-tdx-vtpm", json.dumps(evidence).encode(), options).claims
    assert claims["tdx"]["tcb_status"] == "UpToDate"  # type: ignore[index]
    assert claims["tpm"]["report_data"] == REPORT_DATA.hex()  # type: ignore[index]


def test_cli_tee_and_evidence(snp_vm: Provisioned, chain: Chain) -> None:
    env = {key: value for key, value in os.environ.items() if key.startswith("VERITEE_")}
    done = run_cli("attestation-agent", "tee", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "az-snp-vtpm"
    done = run_cli("attestation-agent", "evidence", "--report-data", REPORT_DATA.hex(), env=env)
    assert done.returncode == 0, done.stderr.decode()
    _verify_snp(json.loads(done.stdout), chain, report_data=REPORT_DATA)


def test_tdx_init_data_and_runtime_measurements_land_in_pcr8_and_pcr23(
    tdx_vm: Provisioned, pki: DcapPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As guest-components does on Azure: init-data extends PCR 8, runtime measurements (`attestation-agent
    extend`) extend PCR 23 and never PCR 17; the verifier's claims of the quote show both, and PCR 8 is checked
    against the init-data digest."""
    monkeypatch.setenv("VERITEE_SYSROOT", str(tmp_path / "guest"))  # where the AAEL is kept
    attester = get("az-tdx-vtpm")
    assert isinstance(attester, AzTdxVtpmAttester)
    pcr17 = attester.pcr(17)
    digest = hashlib.sha256(b"init-data toml").digest()
    attester.bind_init_data(digest)
    env = {key: value for key, value in os.environ.items() if key.startswith("VERITEE_")}
    done = run_cli("attestation-agent", "extend", "--domain", "example.org", "--operation", "boot",
                   "--content", "ready", "--tee", "az-tdx-vtpm", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert runtime_log(attester).register == 23
    assert (tmp_path / "guest/run/attestation-agent/eventlog").stat().st_size > 0
    evidence = attester.evidence(REPORT_DATA)
    options = Options(at=pki.at, report_data=REPORT_DATA, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)},
                      init_data_digest=digest)  # fmt: skip
    pcrs = verify("az-tdx-vtpm", json.dumps(evidence).encode(), options).claims["tpm"]["pcrs"]["sha256"]  # type: ignore[index]
    assert pcrs["8"] == hashlib.sha256(bytes(32) + digest).hexdigest()
    assert pcrs["23"] == aael_pcr([("example.org", "boot", "ready")]).hex()
    assert pcrs["17"] == pcr17.hex()
