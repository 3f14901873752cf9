"""The SNP attester against a fake configfs-tsm tree and a recorded /dev/sev-guest ioctl double."""

from __future__ import annotations

import contextlib
import ctypes
import struct
import uuid
from pathlib import Path
from typing import cast

import pytest
from attestation_agent.attesters import AttesterError
from attestation_agent.attesters import _sev_guest as sg
from attestation_agent.attesters._sev_serde import UndecodableReportError, cert_chain_json, sev_report_json
from attestation_agent.attesters.snp import ConfigfsTsm, SevGuestDevice, SnpAttester, probe
from hypothesis import given, settings
from hypothesis import strategies as st

import verifier
from tests.snp._sev_json import cert_entry, sev_json
from tests.snp.conftest import trusting
from tests.snp.fake_sev_guest import FakeTsmFs, RecordedSevGuest, SnpGuest, cert_table
from tests.snp.make_test_chain import Chain, Vek
from verifier.snp._sev_serde import report_bytes


@pytest.fixture
def guest(milan_chain: Chain, milan_vcek: Vek) -> SnpGuest:
    return SnpGuest(milan_chain, milan_vcek)


def _sysroot(tmp_path: Path, *, configfs: bool) -> Path:
    (tmp_path / "dev").mkdir(parents=True)
    (tmp_path / "dev/sev-guest").write_bytes(b"")
    if configfs:
        (tmp_path / "sys/kernel/config/tsm/report").mkdir(parents=True)
    return tmp_path


def test_kernel_header_layouts_and_ioctl_numbers() -> None:
    """include/uapi/linux/sev-guest.h: sizes and _IOWR('S', nr, struct snp_guest_request_ioctl)."""
    assert ctypes.sizeof(sg.snp_report_req) == 96
    assert ctypes.sizeof(sg.snp_report_resp) == 4000
    assert ctypes.sizeof(sg.snp_guest_request_ioctl) == 32
    assert sg.snp_guest_request_ioctl.resp_data.offset == 16
    assert ctypes.sizeof(sg.snp_ext_report_req) == 112
    assert sg.snp_ext_report_req.certs_len.offset == 104
    assert sg.SNP_GET_REPORT == 0xC0205300
    assert sg.SNP_GET_EXT_REPORT == 0xC0205302


def test_probe(tmp_path: Path, guest: SnpGuest) -> None:
    assert probe(tmp_path) is None
    device_only = probe(_sysroot(tmp_path / "a", configfs=False))
    assert device_only is not None
    assert isinstance(device_only.backend, SevGuestDevice)
    with_tsm = probe(_sysroot(tmp_path / "b", configfs=True))
    assert with_tsm is not None
    assert isinstance(with_tsm.backend, ConfigfsTsm)


def test_configfs_tsm_evidence_verifies(tmp_path: Path, guest: SnpGuest, milan_chain: Chain) -> None:
    fs = FakeTsmFs(guest)
    attester = probe(_sysroot(tmp_path, configfs=True), tsm_fs=fs)
    assert attester is not None
    evidence = attester.evidence(b"\x42" * 48)
    # guest-components' shape (docs/evidence.md): the certificate table as cert_chain, by type
    chain = cast("list[dict[str, object]]", evidence["cert_chain"])
    assert {entry["cert_type"] for entry in chain} == {"VCEK", "ASK", "ARK"}
    result = verifier.verify("snp", evidence, trusting(milan_chain, report_data=b"\x42" * 48))
    assert result.claims["report_data"] == "42" * 48 + "00" * 16
    names = [line.split()[0] + " " + line.split()[1] for line in fs.log if not line.startswith("mkdir")]
    assert names[:2] == ["read provider", "write privlevel"]
    assert "write inblob" in names
    assert fs.log[-1].startswith("rmdir veritee-")
    assert not list((tmp_path / "sys/kernel/config/tsm/report").iterdir())


def test_configfs_tsm_wrong_provider_and_generation_race(tmp_path: Path, guest: SnpGuest) -> None:
    root = _sysroot(tmp_path, configfs=True)
    for fs, message in [
        (FakeTsmFs(guest, provider="tdx_guest"), "provider is 'tdx_guest', expected 'sev_guest'"),
        (FakeTsmFs(guest, bump_generation_on_read=True), "generation moved from 1 to 7"),
    ]:
        attester = probe(root, tsm_fs=fs)
        assert attester is not None
        with pytest.raises(AttesterError, match=message):
            attester.evidence(b"\x01")
        assert not list((root / "sys/kernel/config/tsm/report").iterdir())  # the entry is always removed


def test_ext_report_is_retried_with_the_size_the_kernel_reports(
    tmp_path: Path, guest: SnpGuest, milan_chain: Chain
) -> None:
    double = RecordedSevGuest(guest)
    attester = probe(_sysroot(tmp_path, configfs=False), ioctl=double)
    assert attester is not None
    evidence = attester.evidence(b"\x07" * 64)
    requests = [(request, struct.unpack_from("<QI", raw, 96)[1], raw[:64]) for request, raw in double.calls]
    assert requests == [
        (sg.SNP_GET_EXT_REPORT, 0x4000, b"\x07" * 64),
        (sg.SNP_GET_EXT_REPORT, 5 * 4096, b"\x07" * 64),
    ]
    assert verifier.verify("snp", evidence, trusting(milan_chain, report_data=b"\x07" * 64)).claims["vmpl"] == 0


def test_plain_report_when_the_host_has_no_certificates(tmp_path: Path, guest: SnpGuest) -> None:
    double = RecordedSevGuest(guest, ext_supported=False)
    attester = SnpAttester(SevGuestDevice(_sysroot(tmp_path, configfs=False) / "dev/sev-guest", double))
    evidence = attester.evidence(b"\x09")
    assert evidence["cert_chain"] is None
    assert [request for request, _ in double.calls] == [sg.SNP_GET_EXT_REPORT, sg.SNP_GET_REPORT]
    assert double.calls[1][1] == b"\x09" + bytes(63) + bytes(32)  # snp_report_req: user_data, vmpl 0, rsvd


def test_firmware_error_status_is_an_attester_error(tmp_path: Path, guest: SnpGuest) -> None:
    def failing(fd: int, request: int, arg: sg.snp_guest_request_ioctl) -> int:
        ctypes.memmove(arg.resp_data, struct.pack("<II", 0x16, 0), 8)
        return 0

    device = SevGuestDevice(_sysroot(tmp_path, configfs=False) / "dev/sev-guest", failing)
    with pytest.raises(AttesterError, match=r"MSG_REPORT_RSP.STATUS is 0x16, expected 0"):
        SnpAttester(device).evidence(b"")
    with pytest.raises(AttesterError, match="at most 64"):
        SnpAttester(device).evidence(bytes(65))


def test_cert_table_parsing() -> None:
    table = cert_table({"vcek": b"V" * 10, "ark": b"A" * 3}, extra={str(uuid.uuid4()): b"x"}, pad_to=4096)
    parsed = sg.parse_cert_table(table)
    assert parsed.certificates == {"vcek": b"V" * 10, "ark": b"A" * 3}
    assert len(parsed.unknown) == 1
    assert sg.parse_cert_table(b"").certificates == {}
    assert sg.parse_cert_table(bytes(4096)).certificates == {}


CORRUPT_TABLES = {
    "entry-past-end": uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes + struct.pack("<II", 48, 100),
    "short-entry": b"\x01" * 10,
    "offset-inside-header": uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes
    + struct.pack("<II", 0, 8)
    + bytes(24),
}


@pytest.mark.parametrize("table", CORRUPT_TABLES.values(), ids=CORRUPT_TABLES.keys())
def test_corrupt_cert_tables(table: bytes) -> None:
    with pytest.raises(sg.SevGuestError, match="certificate table"):
        sg.parse_cert_table(table)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_cert_table_raises_only_sev_guest_error(data: bytes) -> None:
    with contextlib.suppress(sg.SevGuestError):
        parsed = sg.parse_cert_table(data)
        assert all(isinstance(v, bytes) for v in parsed.certificates.values())


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_cert_tables(data: st.DataObject) -> None:
    table = bytearray(cert_table({"vcek": b"V" * 40, "ask": b"S" * 30, "ark": b"A" * 20}))
    for _ in range(data.draw(st.integers(1, 6))):
        table[data.draw(st.integers(0, len(table) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(sg.SevGuestError):
        parsed = sg.parse_cert_table(bytes(table))
        assert all(len(v) <= len(table) for v in parsed.certificates.values())


def test_evidence_is_guest_components_json_of_the_report_and_table(tmp_path: Path, guest: SnpGuest) -> None:
    """The agent's evidence equals what guest-components sends for the same report and certificate table: the
    test serialiser (written from the sev crate's definitions) reads the report bytes the device gave."""
    fs = FakeTsmFs(guest)
    attester = probe(_sysroot(tmp_path, configfs=True), tsm_fs=fs)
    assert attester is not None
    evidence = attester.evidence(b"\x42" * 48)
    document = cast("dict[str, object]", evidence["attestation_report"])
    raw = report_bytes(document)
    assert document == sev_json(raw)
    assert list(evidence) == ["attestation_report", "cert_chain"]
    table = sg.parse_cert_table(guest.table())
    assert evidence["cert_chain"] == [
        cert_entry({"vcek": "VCEK", "ask": "ASK", "ark": "ARK"}[name], der) for name, der in table.certificates.items()
    ]


def test_cert_table_entries_keep_order_and_unknown_guids() -> None:
    other = str(uuid.uuid4())
    crl = "92f81bc3-5811-4d3d-97ff-d19f88dc67ea"
    table = cert_table({"vlek": b"L", "ask": b"S"}, extra={crl: b"C", other: b"x"})
    assert cert_chain_json(list(sg.parse_cert_table(table).entries)) == [
        cert_entry("VLEK", b"L"),
        cert_entry("ASK", b"S"),
        cert_entry("CRL", b"C"),
        cert_entry({"OTHER": other}, b"x"),
    ]
    assert cert_chain_json([]) is None


def test_a_report_the_crate_cannot_decode_goes_in_the_earlier_shape(tmp_path: Path, guest: SnpGuest) -> None:
    """A version 2 report with a masked CHIP_ID has no TCB layout the sev crate can decide: the agent sends it
    base64 with the certificates map, which Veritee's verifier takes."""

    class Masked:
        def report(self, report_data: bytes) -> tuple[bytes, bytes]:
            raw = bytearray(guest.report(report_data))
            raw[0:4] = (2).to_bytes(4, "little")
            raw[0x1A0:0x1E0] = bytes(64)
            return bytes(raw), guest.table()

    evidence = SnpAttester(Masked()).evidence(b"\x01")
    assert isinstance(evidence["attestation_report"], str)
    assert set(cast("dict[str, str]", evidence["certificates"])) == {"vcek", "ask", "ark"}
    with pytest.raises(UndecodableReportError, match="masked CHIP_ID"):
        sev_report_json(b"\x02" + bytes(0x4A0 - 1))
