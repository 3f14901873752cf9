"""Named negative datasets: each malformed log raises FormatError with the reason and the field named."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from verifier.errors import FormatError, Reason
from verifier.eventlog import MAX_EVENT_DATA_SIZE, MAX_LOG_SIZE, parse
from verifier.eventlog import _parse as parse_module

from ._build import (
    EV_IPL,
    EV_NO_ACTION,
    EV_SEPARATOR,
    SHA1,
    SHA256,
    SHA384,
    event2,
    header,
    measured,
    spec_id,
    tcg2_log,
)

TABLE = [(SHA1, 20), (SHA256, 32)]
GOOD_EVENT = measured(0, EV_SEPARATOR, bytes(4), [SHA1, SHA256])
STARTUP_LOCALITY = b"StartupLocality\x00"


@dataclass(frozen=True)
class Bad:
    name: str
    data: bytes
    message: str  # a fragment the FormatError's detail must contain
    kind: str = "tcg2"
    reason: Reason = Reason.MALFORMED_EVIDENCE


BAD = [
    Bad("empty", b"", "header.pcrIndex"),
    Bad("only padding", b"\xff" * 4096, "header.eventType is 0xffffffff"),
    Bad("truncated header", tcg2_log()[:20], "header.digest"),
    Bad("truncated Spec ID event", tcg2_log()[:40], "header.event needs"),
    Bad("header not EV_NO_ACTION", header(spec_id(TABLE), event_type=EV_SEPARATOR), "header.eventType is 0x4"),
    Bad("header digest not zero", header(spec_id(TABLE), digest=b"\x01" * 20), "reserved field header.digest"),
    Bad(
        "bad Spec ID signature",
        header(spec_id(TABLE, signature=b"NotASpecIdEvent\x00")),
        "signature is b'NotASpecIdEvent\\x00'",
    ),
    Bad(
        "legacy SHA-1 log (Spec ID Event00)",
        header(spec_id(TABLE, signature=b"Spec ID Event00\x00")),
        "expected b'Spec ID Event03\\x00'",
        reason=Reason.UNSUPPORTED_FORMAT,
    ),
    Bad("no algorithms", header(spec_id([], count=0)), "numberOfAlgorithms is 0"),
    Bad("too many algorithms", header(spec_id(TABLE, count=1000)), "numberOfAlgorithms is 1000"),
    Bad("algorithm table short", header(spec_id(TABLE, count=3)), "digestSizes[2].algorithmId"),
    Bad("sha256 with wrong size", header(spec_id([(SHA256, 20)])), "digestSize for sha256 is 20, expected 32"),
    Bad("unknown algorithm size zero", header(spec_id([(0x1234, 0)])), "alg_0x1234 is 0"),
    Bad("algorithm listed twice", header(spec_id([(SHA1, 20), (SHA1, 20)])), "lists an algorithm twice"),
    Bad("Spec ID trailing bytes", header(spec_id(TABLE) + b"\x01"), "1 trailing bytes"),
    Bad(
        "digest count beyond table",
        tcg2_log(event2(0, EV_SEPARATOR, bytes(4), [(SHA1, bytes(20)), (SHA256, bytes(32))], count=3)),
        "event[0].digests.count at offset 0x45 is 3, expected 2",
    ),
    Bad(
        "digest count below table",
        tcg2_log(event2(0, EV_SEPARATOR, bytes(4), [(SHA1, bytes(20))])),
        "digests.count at offset 0x45 is 1, expected 2",
    ),
    Bad(
        "unknown algorithm without size",
        tcg2_log(event2(0, EV_SEPARATOR, bytes(4), [(SHA1, bytes(20)), (SHA384, bytes(48))])),
        "event[0].digests[1].hashAlg is 0x000c (sha384), expected one of the Spec ID table",
    ),
    Bad(
        "same bank twice in an event",
        tcg2_log(event2(0, EV_SEPARATOR, bytes(4), [(SHA1, bytes(20)), (SHA1, bytes(20))])),
        "event[0].digests lists sha1 twice",
    ),
    Bad(
        "event size beyond end",
        tcg2_log(event2(0, EV_IPL, b"grub", [(SHA1, bytes(20)), (SHA256, bytes(32))], size=4096)),
        "event[0].event needs 4096 bytes",
    ),
    Bad(
        "event size over the cap",
        tcg2_log(event2(0, EV_IPL, b"", [(SHA1, bytes(20)), (SHA256, bytes(32))], size=MAX_EVENT_DATA_SIZE + 1)),
        f"eventSize is {MAX_EVENT_DATA_SIZE + 1}, over the limit",
    ),
    Bad("truncated second event", tcg2_log(GOOD_EVENT, GOOD_EVENT[:30]), "event[1].digests[0].digest"),
    Bad("garbage after last event", tcg2_log(GOOD_EVENT) + b"\x01\x02", "event[1].pcrIndex"),
    Bad(
        "mixed 0x00/0xFF padding",
        tcg2_log(GOOD_EVENT) + b"\xff" * 8 + b"\x00" * 8,
        "event[1].pcrIndex is 4294967295",
    ),
    Bad(
        "PCR index 24",
        tcg2_log(measured(24, EV_IPL, b"x", [SHA1, SHA256])),
        "pcrIndex is 24, expected 0 to 23",
    ),
    Bad(
        "CC measurement register index 5",
        tcg2_log(measured(5, EV_IPL, b"x", [SHA384]), algorithms=(SHA384,)),
        "CC measurement register index) is 5",
        kind="ccel",
    ),
    Bad(
        "StartupLocality event too long",
        tcg2_log(event2(0, EV_NO_ACTION, STARTUP_LOCALITY + b"\x03\x00", [(SHA1, bytes(20)), (SHA256, bytes(32))])),
        "StartupLocality event is 18 bytes, expected 17",
    ),
    Bad(
        "two StartupLocality events",
        tcg2_log(*[event2(0, EV_NO_ACTION, STARTUP_LOCALITY + b"\x03", [(SHA1, bytes(20)), (SHA256, bytes(32))])] * 2),
        "event[1] is a second StartupLocality event",
    ),
    Bad("over the size cap", b"\x00" * (MAX_LOG_SIZE + 1), f"over the limit of {MAX_LOG_SIZE}"),
    Bad("unknown kind", tcg2_log(GOOD_EVENT), "kind is 'ima'", kind="ima", reason=Reason.UNSUPPORTED_FORMAT),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_malformed_log_raises_format_error(bad: Bad) -> None:
    with pytest.raises(FormatError) as info:
        parse(bad.data, bad.kind)  # type: ignore[arg-type]
    assert info.value.reason is bad.reason
    assert bad.message in info.value.detail


def test_the_base_of_the_negative_datasets_is_valid() -> None:
    log = parse(tcg2_log(GOOD_EVENT), "tcg2")
    assert [e.type_name for e in log.events] == ["EV_SEPARATOR"]
    assert struct.unpack("<I", log.events[0].data) == (0,)


def test_event_count_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "MAX_EVENTS", 2)
    parse(tcg2_log(GOOD_EVENT, GOOD_EVENT), "tcg2")
    with pytest.raises(FormatError, match="more than 2 events"):
        parse(tcg2_log(GOOD_EVENT, GOOD_EVENT, GOOD_EVENT), "tcg2")
