"""The TDX attester against a fake device tree (configfs-tsm emulated by a thread, CCEL as sysfs files)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from attestation_agent.attesters import AttesterError, detect
from attestation_agent.attesters.tdx import TdxAttester, probe

import verifier
from verifier import Options

from ._vectors import OVMF_RTMRS
from .fake_device import FakeTdxDevice, ccel_table
from .make_test_chain import DcapPki, make_pki


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def opts(pki: DcapPki, **extra: object) -> Options:
    return Options(at=pki.at, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)}, **extra)  # type: ignore[arg-type]


def test_probe_needs_the_device_and_configfs(tmp_path: Path, pki: DcapPki) -> None:
    assert probe(tmp_path) is None
    (tmp_path / "sys/kernel/config/tsm/report").mkdir(parents=True)
    assert probe(tmp_path) is None  # configfs-tsm alone could be SNP
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/tdx_guest").touch()
    assert isinstance(probe(tmp_path), TdxAttester)


def test_evidence_verifies_with_the_test_chain(tmp_path: Path, pki: DcapPki, vectors: Path) -> None:
    ccel = (vectors / "tdx" / "trustee" / "CCEL_data_ovmf").read_bytes()[:2120]  # the log ends at byte 2120
    rtmrs = tuple(bytes.fromhex(r) for r in OVMF_RTMRS)
    with FakeTdxDevice(tmp_path, pki, ccel=ccel, rtmrs=rtmrs, mr_config_id=b"\x05" * 48) as device:
        attester = detect(tmp_path)
        assert attester.tee == "tdx"
        evidence = attester.evidence(b"\x42" * 48)
    assert device.quotes == 1
    assert list((tmp_path / "sys/kernel/config/tsm/report").iterdir()) == []  # the entry was removed
    assert base64.b64decode(str(evidence["cc_eventlog"])) == ccel  # cut to LAML, padding dropped
    claims = verifier.verify("tdx", evidence, opts(pki, report_data=b"\x42" * 48, init_data_digest=b"\x05" * 48)).claims
    assert claims["rtmr_replay_ok"] is True
    assert claims["report_data"] == "42" * 48 + "00" * 16


def test_no_ccel_means_no_log(tmp_path: Path, pki: DcapPki) -> None:
    with FakeTdxDevice(tmp_path, pki):
        evidence = TdxAttester(tmp_path).evidence(b"")
    assert evidence["cc_eventlog"] is None


def test_wrong_provider(tmp_path: Path, pki: DcapPki) -> None:
    with FakeTdxDevice(tmp_path, pki, provider="sev_guest"), pytest.raises(AttesterError, match="provider"):
        TdxAttester(tmp_path).quote(b"")


def test_generation_race_is_refused(tmp_path: Path, pki: DcapPki) -> None:
    with FakeTdxDevice(tmp_path, pki, generation_step=2), pytest.raises(AttesterError, match="generation"):
        TdxAttester(tmp_path).quote(b"")


def test_report_data_too_long(tmp_path: Path) -> None:
    with pytest.raises(AttesterError, match="at most 64"):
        TdxAttester(tmp_path).quote(bytes(65))


def test_bad_ccel_table(tmp_path: Path) -> None:
    tables = tmp_path / "sys/firmware/acpi/tables"
    (tables / "data").mkdir(parents=True)
    (tables / "data" / "CCEL").write_bytes(bytes(100))
    (tables / "CCEL").write_bytes(b"XXXX" + bytes(60))
    with pytest.raises(AttesterError, match="CCEL"):
        TdxAttester(tmp_path).event_log()
    (tables / "CCEL").write_bytes(ccel_table(laml=1000))
    with pytest.raises(AttesterError, match="LAML"):
        TdxAttester(tmp_path).event_log()


def test_extend_rtmr_through_sysfs(tmp_path: Path) -> None:
    measurements = tmp_path / "sys/class/misc/tdx_guest/measurements"
    measurements.mkdir(parents=True)
    (measurements / "rtmr2:sha384").write_bytes(bytes(48))
    TdxAttester(tmp_path).extend_rtmr(2, b"\x11" * 48)
    assert (measurements / "rtmr2:sha384").read_bytes() == b"\x11" * 48


def test_extend_rtmr_through_configfs(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/config/tsm/rtmrs").mkdir(parents=True)
    TdxAttester(tmp_path).extend_rtmr(3, b"\x22" * 48)
    entry = tmp_path / "sys/kernel/config/tsm/rtmrs/veritee-rtmr3"
    assert (entry / "index").read_text() == "3"
    assert (entry / "digest").read_bytes() == b"\x22" * 48


@pytest.mark.parametrize(("index", "digest", "match"), [(0, bytes(48), "RTMR0"), (2, bytes(32), "48")])
def test_extend_rtmr_refusals(tmp_path: Path, index: int, digest: bytes, match: str) -> None:
    with pytest.raises(AttesterError, match=match):
        TdxAttester(tmp_path).extend_rtmr(index, digest)


def test_extend_rtmr_without_interface(tmp_path: Path) -> None:
    with pytest.raises(AttesterError, match="no RTMR interface"):
        TdxAttester(tmp_path).extend_rtmr(2, bytes(48))


def test_bind_init_data_is_a_no_op(tmp_path: Path) -> None:
    TdxAttester(tmp_path).bind_init_data(b"\x01" * 48)
