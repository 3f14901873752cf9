"""Replay rules on synthetic logs: StartupLocality, EV_NO_ACTION, padding, unknown banks, MRTD."""

from __future__ import annotations

import hashlib

import pytest

from verifier.errors import Reason, VerificationError
from verifier.eventlog import check_replay, parse

from ._build import (
    EV_IPL,
    EV_NO_ACTION,
    EV_SEPARATOR,
    SHA1,
    SHA256,
    SHA384,
    SM3_256,
    event2,
    extend,
    header,
    measured,
    spec_id,
    tcg2_log,
)

SEPARATOR = bytes(4)


def _startup_locality(locality: int) -> bytes:
    return event2(0, EV_NO_ACTION, b"StartupLocality\x00" + bytes([locality]), [(SHA1, bytes(20)), (SHA256, bytes(32))])


def test_startup_locality_sets_pcr0_initial_value() -> None:
    log = parse(tcg2_log(_startup_locality(3), measured(0, EV_SEPARATOR, SEPARATOR, [SHA1, SHA256])), "tcg2")
    assert log.startup_locality == 3
    for name, size in (("sha1", 20), ("sha256", 32)):
        initial = bytes(size - 1) + b"\x03"
        assert log.replay()[name] == {"0": extend(name, initial, hashlib.new(name, SEPARATOR).digest())}
    assert log.events[0].details == {"signature": "StartupLocality", "startup_locality": 3}
    assert log.to_json()["startup_locality"] == 3


def test_no_action_events_are_listed_not_extended() -> None:
    log = parse(tcg2_log(event2(5, EV_NO_ACTION, b"x", [(SHA1, b"\x01" * 20), (SHA256, b"\x01" * 32)])), "tcg2")
    assert len(log.events) == 1
    assert log.replay() == {}


def test_without_startup_locality_pcr0_starts_at_zero() -> None:
    log = parse(tcg2_log(measured(0, EV_IPL, b"grub", [SHA1, SHA256])), "tcg2")
    assert log.replay()["sha256"]["0"] == extend("sha256", bytes(32), hashlib.sha256(b"grub").digest())
    assert log.events[0].details == {"string": "grub"}


@pytest.mark.parametrize("pad", [b"\x00", b"\xff"], ids=["zeros", "ones"])
def test_trailing_padding_ends_the_log(pad: bytes) -> None:
    body = tcg2_log(measured(4, EV_SEPARATOR, SEPARATOR, [SHA1, SHA256]))
    log = parse(body + pad * 100_000, "tcg2")
    assert len(log.events) == 1
    assert log.size == len(body)


def test_last_event_ending_in_padding_bytes_is_kept() -> None:
    # The separator's data ends in zeros: the padding scan must not cut into the record.
    body = tcg2_log(
        measured(4, EV_SEPARATOR, SEPARATOR, [SHA1, SHA256]), measured(4, EV_IPL, b"\x00" * 8, [SHA1, SHA256])
    )
    assert len(parse(body, "tcg2").events) == 2
    assert len(parse(body + b"\x00" * 64, "tcg2").events) == 2


def test_unknown_banks_are_kept_not_replayed() -> None:
    table = [(SHA256, 32), (SM3_256, 32), (0x1234, 7)]
    digests = [(SHA256, hashlib.sha256(b"a").digest()), (SM3_256, b"\x05" * 32), (0x1234, b"\x07" * 7)]
    log = parse(header(spec_id(table)) + event2(8, EV_IPL, b"a", digests), "tcg2")
    assert [a.name for a in log.spec_id.algorithms] == ["sha256", "sm3_256", "alg_0x1234"]
    assert dict(log.events[0].digests) == {
        "sha256": hashlib.sha256(b"a").digest(),
        "sm3_256": b"\x05" * 32,
        "alg_0x1234": b"\x07" * 7,
    }
    assert set(log.replay()) == {"sha256"}
    assert log.to_json()["algorithms"] == {"sha256": 32, "sm3_256": 32, "alg_0x1234": 7}


def test_ccel_mrtd_events_are_listed_not_replayed() -> None:
    data = tcg2_log(
        measured(0, EV_IPL, b"td-hob", [SHA384]),
        measured(1, EV_IPL, b"fw", [SHA384]),
        measured(4, EV_IPL, b"runtime", [SHA384]),
        algorithms=(SHA384,),
    )
    log = parse(data, "ccel")
    assert [e.register for e in log.events] == ["mrtd", "rtmr0", "rtmr3"]
    assert log.replay() == {
        "sha384": {
            "rtmr0": extend("sha384", bytes(48), hashlib.sha384(b"fw").digest()),
            "rtmr3": extend("sha384", bytes(48), hashlib.sha384(b"runtime").digest()),
        }
    }


def test_ccel_replays_only_sha384() -> None:
    data = tcg2_log(measured(1, EV_IPL, b"fw", [SHA256, SHA384]), algorithms=(SHA256, SHA384))
    assert set(parse(data, "ccel").replay()) == {"sha384"}
    assert set(parse(data, "tcg2").replay()) == {"sha256", "sha384"}


def test_check_replay_accepts_bank_names_in_any_case() -> None:
    log = parse(tcg2_log(measured(7, EV_IPL, b"x", [SHA1, SHA256])), "tcg2")
    check_replay(log, {"SHA256": {"7": log.replay()["sha256"]["7"]}})
    with pytest.raises(VerificationError) as info:
        check_replay(log, {"SHA1": {"7": bytes(20)}, "SHA256": {"7": bytes(32)}})
    assert info.value.reason is Reason.EVENTLOG_MISMATCH
    assert "sha1 register 7" in info.value.detail
    assert "sha256 register 7" in info.value.detail
