"""Runtime events of CoCo's attestation agent (AAEL) in a replayed log, as claims policies can read.

guest-components' agent records each runtime measurement as an EV_EVENT_TAG record whose data is a
TCG_PCClientTaggedEvent (PFP 10.4.2) with taggedEventID 0x4141454C ("AAEL") and the text
`<domain> <operation> <content>`. Replay binds only the digests, so before the text of an AAEL record may
mean anything, `check_aael_digests` (run by check_replay) requires each of its digests to be its bank's hash of
the tagged event (as guest-components computes them); the claims are then made from the log's JSON.

    >>> text = b"example.org pull-image sha256:00ff"
    >>> data = struct.pack("<II", AAEL_TAG, len(text)) + text
    >>> aael_claims([{"register": "17", "event_type": EV_EVENT_TAG, "data": data.hex()}])
    [{'register': '17', 'domain': 'example.org', 'operation': 'pull-image', 'content': 'sha256:00ff'}]
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import Reason, VerificationError
from ._tables import ALGORITHMS, EV_EVENT_TAG

if TYPE_CHECKING:
    from ._model import Event

__all__ = ["AAEL_TAG", "aael_claims", "check_aael_digests"]

AAEL_TAG = 0x4141454C
_TAGGED_EVENT = struct.Struct("<II")  # taggedEventID, taggedEventDataSize


def _text(data: bytes) -> str | None:
    if len(data) < _TAGGED_EVENT.size:
        return None
    tag, size = _TAGGED_EVENT.unpack_from(data)
    if tag != AAEL_TAG or _TAGGED_EVENT.size + size != len(data):
        return None
    try:
        return data[_TAGGED_EVENT.size :].decode()
    except UnicodeDecodeError:
        return None


def _is_aael(data: bytes) -> bool:
    return len(data) >= _TAGGED_EVENT.size and _TAGGED_EVENT.unpack_from(data)[0] == AAEL_TAG


def check_aael_digests(events: Sequence[Event]) -> None:
    """Every AAEL record's digests are the hashes of its data; VerificationError(eventlog_mismatch) otherwise."""
    by_name = {a.name: a for a in ALGORITHMS.values()}
    for event in events:
        if event.event_type != EV_EVENT_TAG or not _is_aael(event.data):
            continue
        for bank, digest in event.digests.items():
            algorithm = by_name.get(bank)
            if algorithm is None or algorithm.new is None:
                continue
            h = algorithm.new()
            h.update(event.data)
            if h.digest() != digest:
                raise VerificationError(
                    Reason.EVENTLOG_MISMATCH,
                    f"AAEL event {event.index} ({event.register}): its {bank} digest is {digest.hex()}, "
                    f"the hash of its data is {h.digest().hex()} (the event text was altered)",
                )


def aael_claims(events: Iterable[Mapping[str, object]]) -> list[dict[str, str]]:
    """`{"register", "domain", "operation", "content"}` for each AAEL event of a log's JSON events, in order.
    A tagged event that is not well-formed AAEL text is left out (its digest was still replayed)."""
    out: list[dict[str, str]] = []
    for event in events:
        data = event.get("data")
        if event.get("event_type") != EV_EVENT_TAG or not isinstance(data, str):
            continue
        text = _text(bytes.fromhex(data))
        if text is None:
            continue
        parts = text.split(" ", 2)
        if len(parts) != 3:
            continue
        domain, operation, content = parts
        register = str(event.get("register"))
        out.append({"register": register, "domain": domain, "operation": operation, "content": content})
    return out
