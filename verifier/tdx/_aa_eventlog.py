"""The `aa_eventlog` of older CoCo guests' TDX evidence: the attestation agent's runtime events as text, replayed
to RTMR3 (guest-components before its events moved into the CC event log; trustee's verifier read it so).

Text, one record a line:

    INIT sha384/<hex of RTMR3's initial value>
    <domain> <operation> <content>
    ...

Replay (as trustee did): state = the INIT value; state = H(state || H("INIT <alg>/<lowercase hex>")); then for each
event state = H(state || H("<domain> <operation> <content>")). The result must equal RTMR3 of the signed quote, so
a verified log's events are what the guest measured (claim `aa_eventlog`).

>>> import hashlib
>>> init = bytes(48)
>>> state = hashlib.sha384(init + hashlib.sha384(b"INIT sha384/" + init.hex().encode()).digest()).digest()
>>> rtmr3 = hashlib.sha384(state + hashlib.sha384(b"example.org pull-image sha256:00ff").digest()).digest()
>>> replay_aa_eventlog(f"INIT sha384/{init.hex()}\\nexample.org pull-image sha256:00ff\\n", rtmr3)
[{'domain': 'example.org', 'operation': 'pull-image', 'content': 'sha256:00ff'}]
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..errors import FormatError, Reason, VerificationError

__all__ = ["MAX_AA_EVENTLOG_CHARS", "replay_aa_eventlog"]

MAX_AA_EVENTLOG_CHARS = 1024 * 1024
_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sha384": lambda data: hashlib.sha384(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
}
_WHAT = "TDX evidence: aa_eventlog"


def replay_aa_eventlog(text: str, rtmr3: bytes) -> list[dict[str, str]]:
    """The events of a log that replays to RTMR3; FormatError when it does not parse, VerificationError
    (eventlog_mismatch) when it does not replay."""
    if len(text) > MAX_AA_EVENTLOG_CHARS:
        raise FormatError(f"{_WHAT} is {len(text)} characters, at most {MAX_AA_EVENTLOG_CHARS}")
    lines = text.splitlines()
    if not lines:
        raise FormatError(f"{_WHAT} is empty, expected an INIT line first")
    init = lines[0].split()
    if len(init) != 2 or init[0] != "INIT" or "/" not in init[1]:
        raise FormatError(f"{_WHAT} line 1 is {lines[0][:80]!r}, expected 'INIT <sha256|sha384|sha512>/<hex>'")
    algorithm, _, value = init[1].partition("/")
    algorithm = algorithm.lower()
    digest = _HASHES.get(algorithm)
    if digest is None:
        raise FormatError(f"{_WHAT} line 1: algorithm {algorithm!r}, expected one of {sorted(_HASHES)}")
    try:
        state = bytes.fromhex(value)
    except ValueError:
        raise FormatError(f"{_WHAT} line 1: initial value {value[:80]!r} is not hex") from None
    events = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.rstrip().split(" ")
        if len(parts) != 3:
            raise FormatError(f"{_WHAT} line {number} is {line[:80]!r}, expected '<domain> <operation> <content>'")
        events.append({"domain": parts[0], "operation": parts[1], "content": parts[2]})
    state = digest(state + digest(f"INIT {algorithm}/{state.hex()}".encode()))
    for event in events:
        state = digest(state + digest(f"{event['domain']} {event['operation']} {event['content']}".encode()))
    if state != rtmr3:
        raise VerificationError(
            Reason.EVENTLOG_MISMATCH,
            f"{_WHAT} replays ({algorithm}, {len(events)} events) to {state.hex()}, but RTMR[3] is {rtmr3.hex()}",
        )
    return events
