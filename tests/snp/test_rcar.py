"""End to end: the agent's SNP attester on a fake device tree (VERITEE_SYSROOT) runs the full RCAR handshake
against a real `kbs serve` that trusts the test-only AMD-like chain, with init-data bound to HOST_DATA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from attestation_agent.attesters import detect
from attestation_agent.attesters.snp import probe
from attestation_agent.kbs_client import KbsClient, KbsClientError

from kbs_protocol import init_data_digest
from tests.integration._kbs_server import KbsServer
from tests.snp.fake_sev_guest import FakeTsmFs, RecordedSevGuest, SnpGuest
from tests.snp.make_test_chain import Chain, Vek

INIT_DATA = 'algorithm = "sha384"\nversion = "0.1.0"\n[data]\n"policy.rego" = "package agent_policy"\n'
SECRET = b"the layer key"


@pytest.fixture(scope="module")
def kbs(tmp_path_factory: pytest.TempPathFactory, milan_chain: Chain, milan_vcek: Vek) -> Iterator[KbsServer]:
    folder = tmp_path_factory.mktemp("kbs")
    anchors = folder / "test-amd-chain.pem"
    anchors.write_bytes(milan_chain.trust_pem())
    config = {"verifier": {"trust": {"snp": [str(anchors)]}, "offline": True}}
    with KbsServer(folder, config=config, allow_sample=False) as server:
        server.admin.put_resource("default/key/1", SECRET)
        measurement = bytes(range(48)).hex()  # make_test_chain's default MEASUREMENT
        server.admin.put_reference_value("snp_measurement", [measurement])
        for name, value in {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}.items():
            server.admin.put_reference_value(f"snp_min_tcb_{name}", [str(value)])
        yield server


def _sysroot(tmp_path: Path, *, configfs: bool) -> Path:
    (tmp_path / "dev").mkdir(parents=True)
    (tmp_path / "dev/sev-guest").write_bytes(b"")
    if configfs:
        (tmp_path / "sys/kernel/config/tsm/report").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("configfs", [True, False], ids=["configfs-tsm", "sev-guest-ioctl"])
def test_get_resource_through_the_fake_device(
    kbs: KbsServer,
    milan_chain: Chain,
    milan_vcek: Vek,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    configfs: bool,
) -> None:
    host_data = init_data_digest(INIT_DATA)[:32]
    guest = SnpGuest(milan_chain, milan_vcek, host_data=host_data)
    root = _sysroot(tmp_path, configfs=configfs)
    monkeypatch.setenv("VERITEE_SYSROOT", str(root))
    assert detect().tee == "snp"  # what the agent CLI would pick on this tree
    attester = probe(root, tsm_fs=FakeTsmFs(guest), ioctl=RecordedSevGuest(guest))
    with KbsClient(kbs.url, attester, init_data=INIT_DATA) as client:
        assert client.get_resource("kbs:///default/key/1") == SECRET


def test_host_data_that_does_not_match_the_init_data_is_refused(
    kbs: KbsServer, milan_chain: Chain, milan_vcek: Vek, tmp_path: Path
) -> None:
    guest = SnpGuest(milan_chain, milan_vcek, host_data=bytes(32))
    attester = probe(_sysroot(tmp_path, configfs=True), tsm_fs=FakeTsmFs(guest))
    with KbsClient(kbs.url, attester, init_data=INIT_DATA) as client, pytest.raises(KbsClientError) as caught:
        client.get_resource("kbs:///default/key/1")
    assert "init_data_mismatch" in str(caught.value)
    assert "HOST_DATA is " + "00" * 32 in str(caught.value)


def test_debug_guest_gets_no_secret(kbs: KbsServer, milan_chain: Chain, milan_vcek: Vek, tmp_path: Path) -> None:
    guest = SnpGuest(milan_chain, milan_vcek, policy=0x30000 | 1 << 19)  # GUEST_POLICY.DEBUG
    attester = probe(_sysroot(tmp_path, configfs=True), tsm_fs=FakeTsmFs(guest))
    with KbsClient(kbs.url, attester) as client, pytest.raises(KbsClientError) as caught:
        client.get_resource("kbs:///default/key/1")
    assert caught.value.status == 403
