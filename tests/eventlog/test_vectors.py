"""The real logs of tests/vectors replay to the values EXPECTED.log and go-tpm-tools give.

Provenance (tests/vectors/PROVENANCE.md): rhel8-uefi.bin and eventlog_expected_pcrs.json from
google/go-tpm-tools 67670e5c021a (internal/test/eventlogs/, server/eventlog_test.go); CCEL_data and CCEL_data_ovmf
from confidential-containers/trustee 78962cd416dc (deps/verifier/test_data/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verifier.errors import Reason, VerificationError
from verifier.eventlog import EventLog, check_replay, parse

from ._expected import (
    CCEL,
    CCEL_END,
    CCEL_EVENTS,
    CCEL_OVMF,
    CCEL_OVMF_END,
    CCEL_OVMF_EVENTS,
    CCEL_OVMF_RTMRS,
    CCEL_RTMRS,
    QUOTE4_RTMRS,
    RHEL8,
    RHEL8_EXPECTED,
)


def _load(vectors: Path, name: str, kind: str) -> EventLog:
    return parse((vectors / name).read_bytes(), kind)  # type: ignore[arg-type]


def _quoted(values: dict[str, str]) -> dict[str, bytes]:
    return {register: bytes.fromhex(value) for register, value in values.items()}


def test_rhel8_replays_every_expected_bank_and_pcr(vectors: Path) -> None:
    log = _load(vectors, RHEL8, "tcg2")
    expected = json.loads((vectors / RHEL8_EXPECTED).read_text())["rhel8-uefi.bin"]
    replayed = log.replay()
    assert {bank.lower() for bank in expected} <= set(replayed)
    for bank, pcrs in expected.items():
        assert {pcr: replayed[bank.lower()][pcr].hex() for pcr in pcrs} == pcrs
    # The log's own Spec ID table also lists SHA-384, replayed like the other banks.
    assert set(replayed) == {"sha1", "sha256", "sha384"}
    assert sorted(replayed["sha256"], key=int) == sorted(expected["SHA256"], key=int)
    check_replay(log, {bank.lower(): _quoted(pcrs) for bank, pcrs in expected.items()})


def test_rhel8_structure(vectors: Path) -> None:
    log = _load(vectors, RHEL8, "tcg2")
    assert log.kind == "tcg2"
    assert [(a.name, a.digest_size) for a in log.spec_id.algorithms] == [
        ("sha1", 20),
        ("sha256", 32),
        ("sha384", 48),
    ]
    assert log.spec_id.spec_version == (2, 0, 0)
    assert log.size == (vectors / RHEL8).stat().st_size
    assert log.startup_locality is None
    first = log.events[0]
    assert (first.register, first.type_name, first.details) == (
        "0",
        "EV_S_CRTM_VERSION",
        {"string": "GCE Virtual Firmware v1"},
    )
    pk = log.events[3]
    assert pk.type_name == "EV_EFI_VARIABLE_DRIVER_CONFIG"
    assert pk.details == {
        "variable_guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c",
        "variable_name": "PK",
        "variable_data_size": 806,
    }
    separators = [e.register for e in log.events if e.type_name == "EV_SEPARATOR"]
    assert separators[:8] == ["7", "0", "1", "2", "3", "4", "5", "6"]
    assert any(e.type_name == "EV_IPL" and e.details == {"string": "MokList"} for e in log.events)


def test_ccel_ovmf_replays_to_expected_rtmrs(vectors: Path) -> None:
    log = _load(vectors, CCEL_OVMF, "ccel")
    assert len(log.events) == CCEL_OVMF_EVENTS
    assert log.size == CCEL_OVMF_END
    assert [a.name for a in log.spec_id.algorithms] == ["sha384"]
    assert {r: v.hex() for r, v in log.replay()["sha384"].items()} == CCEL_OVMF_RTMRS
    check_replay(log, {"sha384": _quoted(CCEL_OVMF_RTMRS)})


def test_ccel_ovmf_event_fields(vectors: Path) -> None:
    log = _load(vectors, CCEL_OVMF, "ccel")
    assert [e.register for e in log.events].count("rtmr2") == 2
    secure_boot = log.events[2]
    assert (secure_boot.register, secure_boot.type_name) == ("rtmr0", "EV_EFI_VARIABLE_DRIVER_CONFIG")
    assert secure_boot.details is not None
    assert secure_boot.details["variable_name"] == "SecureBoot"
    cmdline = log.events[16]
    assert (cmdline.register, cmdline.type_name) == ("rtmr2", "EV_EVENT_TAG")
    assert cmdline.details is not None
    assert cmdline.details["string"] == "LOADED_IMAGE::LoadOptions"
    assert log.events[-1].details == {"string": "Exit Boot Services Returned with Success"}


def test_ccel_replays_to_expected_rtmrs_and_not_quote4(vectors: Path) -> None:
    log = _load(vectors, CCEL, "ccel")
    assert len(log.events) == CCEL_EVENTS
    assert log.size == CCEL_END
    assert {r: v.hex() for r, v in log.replay()["sha384"].items()} == CCEL_RTMRS
    with pytest.raises(VerificationError) as info:
        check_replay(log, {"sha384": _quoted(QUOTE4_RTMRS)})
    assert info.value.reason is Reason.EVENTLOG_MISMATCH
    assert "sha384 register rtmr0" in info.value.detail
    assert CCEL_RTMRS["rtmr0"] in info.value.detail
    assert QUOTE4_RTMRS["rtmr0"] in info.value.detail
    # rtmr2/rtmr3 are not extended by this log, so only rtmr0 and rtmr1 are compared.
    assert "rtmr2" not in info.value.detail


def test_to_json_shape(vectors: Path) -> None:
    doc = _load(vectors, CCEL_OVMF, "ccel").to_json()
    assert doc["kind"] == "ccel"
    assert doc["registers"] == {"sha384": CCEL_OVMF_RTMRS}
    events = doc["events"]
    assert isinstance(events, list)
    assert len(events) == CCEL_OVMF_EVENTS
    assert events[0]["type_name"] == "EV_EFI_HANDOFF_TABLES2"
    assert events[0]["register"] == "rtmr0"
    assert json.loads(json.dumps(doc)) == doc
    tcg2 = _load(vectors, RHEL8, "tcg2").to_json()
    registers = tcg2["registers"]
    assert isinstance(registers, dict)
    assert registers["sha1"]["0"] == "0f2d3a2a1adaa479aeeca8f5df76aadc41b862ea"


def test_check_replay_mismatch_names_bank_register_got_expected(vectors: Path) -> None:
    log = _load(vectors, RHEL8, "tcg2")
    replayed = log.replay()
    quoted = {"sha256": dict(replayed["sha256"]), "sha1": dict(replayed["sha1"])}
    quoted["sha256"]["4"] = bytes(32)
    # PCR 10 is not extended by the log: carried by the quote, ignored.
    quoted["sha256"]["10"] = b"\x01" * 32
    with pytest.raises(VerificationError) as info:
        check_replay(log, quoted)
    assert info.value.reason is Reason.EVENTLOG_MISMATCH
    assert info.value.detail == (
        f"sha256 register 4: event log replays to {replayed['sha256']['4'].hex()}, quote has {'00' * 32}"
    )


def test_check_replay_without_common_register_fails_closed(vectors: Path) -> None:
    log = _load(vectors, RHEL8, "tcg2")
    with pytest.raises(VerificationError) as info:
        check_replay(log, {"sha256": {"10": bytes(32)}})
    assert info.value.reason is Reason.EVENTLOG_MISMATCH
    assert "no register in common" in info.value.detail


def test_parsed_log_is_immutable_and_hashable(vectors: Path) -> None:
    log = _load(vectors, CCEL_OVMF, "ccel")
    event = log.events[0]
    with pytest.raises(AttributeError):
        event.register = "rtmr3"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.digests["sha384"] = bytes(48)  # type: ignore[index]
    assert len(set(log.events)) == CCEL_OVMF_EVENTS
    assert hash(log) == hash(_load(vectors, CCEL_OVMF, "ccel"))
