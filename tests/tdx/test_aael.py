"""Runtime measurements on the fake TDX device: RTMR3 extended through sysfs, the AAEL records appended to the
firmware's CCEL in the evidence, replayed by the verifier and named in the claims; an altered record fails with
eventlog_mismatch. The fake quote carries the RTMR3 value the extends lead to (it cannot extend by itself)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path

import pytest
from attestation_agent.aael import tagged_event
from attestation_agent.attesters import runtime_log
from attestation_agent.attesters.tdx import TdxAttester

import verifier
from verifier import Options

from ._vectors import OVMF_RTMRS
from .fake_device import FakeTdxDevice
from .make_test_chain import DcapPki, make_pki

EVENTS = [
    ("github.com/confidential-containers", "pull-image", "docker.io/library/nginx@sha256:" + "cd" * 32),
    ("example.org", "start-container", "nginx"),
]


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def expected_rtmr3(start: bytes) -> bytes:
    value = start
    for event in EVENTS:
        value = hashlib.sha384(value + hashlib.sha384(tagged_event(" ".join(event))).digest()).digest()
    return value


def verify(pki: DcapPki, evidence: dict[str, object]) -> Mapping[str, object]:
    options = Options(at=pki.at, collateral=pki.collateral(), trust={"tdx": (pki.root_pem,)}, report_data=bytes(64))
    return verifier.verify("tdx", evidence, options).claims


@pytest.mark.parametrize("with_ccel", [True, False], ids=["after-firmware-ccel", "no-firmware-ccel"])
def test_runtime_events_replay_and_become_claims(tmp_path: Path, pki: DcapPki, vectors: Path, with_ccel: bool) -> None:
    ccel = (vectors / "tdx" / "trustee" / "CCEL_data_ovmf").read_bytes()[:2120] if with_ccel else None
    firmware = [bytes.fromhex(r) for r in OVMF_RTMRS] if with_ccel else [bytes(48)] * 3
    rtmrs = (*firmware, expected_rtmr3(bytes(48)))
    with FakeTdxDevice(tmp_path, pki, ccel=ccel, rtmrs=rtmrs):
        attester = TdxAttester(tmp_path)
        log = runtime_log(attester)
        sysfs = tmp_path / "sys/class/misc/tdx_guest/measurements/rtmr3:sha384"
        sysfs.write_bytes(bytes(48))
        for event in EVENTS:
            log.measure(*event)
        assert sysfs.read_bytes() == hashlib.sha384(tagged_event(" ".join(EVENTS[-1]))).digest()  # the last extend
        evidence = attester.evidence(bytes(64))
    claims = verify(pki, evidence)
    assert claims["rtmr_replay_ok"] is True
    assert claims["aael"] == [{"register": "rtmr3", "domain": d, "operation": o, "content": c} for d, o, c in EVENTS]
    if with_ccel:
        assert ccel is not None
        assert base64.b64decode(str(evidence["cc_eventlog"])).startswith(ccel)

    # The same evidence with one record altered: the replay no longer reaches RTMR3.
    altered = base64.b64decode(str(evidence["cc_eventlog"])).replace(b"nginx@sha256", b"nginy@sha256")
    with pytest.raises(verifier.VerifierError) as raised:
        verify(pki, {**evidence, "cc_eventlog": base64.b64encode(altered).decode()})
    assert raised.value.reason.value == "eventlog_mismatch"
    assert "rtmr3" in raised.value.detail
