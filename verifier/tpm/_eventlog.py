"""The TCG2 event log of TPM evidence: parsed and replayed by `verifier.eventlog`, compared with the quote.

Only registers that the log extends and the quote carries are compared (a mismatch, or no register in common,
is eventlog_mismatch); the parsed events become the `eventlog` claim.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..eventlog import check_replay, parse

__all__ = ["replay_events"]


def replay_events(data: bytes, quoted: Mapping[str, Mapping[int, bytes]]) -> tuple[Mapping[str, object], ...]:
    log = parse(data, "tcg2")
    check_replay(log, {bank: {str(i): value for i, value in values.items()} for bank, values in quoted.items()})
    events = log.to_json()["events"]
    assert isinstance(events, list)
    return tuple(events)
