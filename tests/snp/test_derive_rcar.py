"""An SNP guest launched from Debian's OVMF (its report carries the MEASUREMENT sev-snp-measure gives for that
firmware; the fake PSP of make_test_chain signs it) is affirmed by a real `kbs serve` once `kbs admin
reference-value derive snp --put` has stored the measurement derived from the same firmware file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from attestation_agent.attesters.snp import probe
from attestation_agent.kbs_client import KbsClient, KbsClientError

from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer
from tests.snp.fake_sev_guest import FakeTsmFs, SnpGuest
from tests.snp.make_test_chain import Chain, Vek

DEBIAN_OVMF = Path("/usr/share/ovmf/OVMF.fd")
LAUNCH = ["--vcpus", "4", "--vcpu-type", "EPYC-Milan"]
SECRET = b"for guests of the reference firmware"


@pytest.fixture
def kbs(tmp_path: Path, milan_chain: Chain) -> Iterator[KbsServer]:
    (tmp_path / "kbs").mkdir()
    anchors = tmp_path / "kbs/test-amd-chain.pem"
    anchors.write_bytes(milan_chain.trust_pem())
    config = {"verifier": {"trust": {"snp": [str(anchors)]}, "offline": True}}
    with KbsServer(tmp_path / "kbs", config=config, allow_sample=False) as server:
        server.admin.put_resource("default/key/1", SECRET)
        for name, value in {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}.items():
            server.admin.put_reference_value(f"snp_min_tcb_{name}", [str(value)])
        yield server


def test_measurement_derived_from_debians_ovmf_affirms_its_guest(
    kbs: KbsServer, milan_chain: Chain, milan_vcek: Vek, tmp_path: Path
) -> None:
    if not DEBIAN_OVMF.is_file():
        pytest.fail(f"{DEBIAN_OVMF} is missing: install Debian's ovmf package (scripts/setup)")
    done = run_cli(
        "kbs", "admin", "--url", kbs.url, "reference-value", "derive", "snp", "--ovmf", str(DEBIAN_OVMF), *LAUNCH,
        "--put", env={"VERITEE_ADMIN_TOKEN": kbs.token},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    name, measurement = done.stdout.decode().split()
    assert name == "snp_measurement"
    (tmp_path / "root/sys/kernel/config/tsm/report").mkdir(parents=True)
    (tmp_path / "root/dev").mkdir()
    (tmp_path / "root/dev/sev-guest").write_bytes(b"")

    def get(guest: SnpGuest) -> bytes:
        attester = probe(tmp_path / "root", tsm_fs=FakeTsmFs(guest))
        with KbsClient(kbs.url, attester) as client:
            return client.get_resource("kbs:///default/key/1")

    assert get(SnpGuest(milan_chain, milan_vcek, measurement=bytes.fromhex(measurement))) == SECRET
    with pytest.raises(KbsClientError) as caught:
        get(SnpGuest(milan_chain, milan_vcek))  # another firmware's measurement
    assert caught.value.status == 403
