"""The TCG2 event log of TPM evidence: parsed and replayed by `verifier.eventlog`, compared with the quote.

Only registers that the log extends and the quote carries are compared (a mismatch is eventlog_mismatch); the
events become the `eventlog` claim.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["replay_events"]


def _library() -> Any:
    # verifier.eventlog is built on a parallel branch; imported by name until it lands here.
    return importlib.import_module("verifier.eventlog")


def replay_events(data: bytes, quoted: Mapping[str, Mapping[int, bytes]]) -> tuple[Mapping[str, object], ...]:
    eventlog = _library()
    log = eventlog.parse(data, "tcg2")
    registers = {
        bank: {str(index): value for index, value in values.items()} for bank, values in quoted.items()
    }
    eventlog.check_replay(log, registers)
    events: list[Mapping[str, object]] = log.to_json()["events"]
    return tuple(events)
