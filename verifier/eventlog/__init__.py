"""TCG2 crypto-agile event logs (TPM) and the TDX CC event log (CCEL): parse, replay, compare with a quote.

Both logs share one record format (TCG PC Client Platform Firmware Profile 1.05, section 10): a SHA-1-format
header event carrying the "Spec ID Event03" algorithm table, then TCG_PCR_EVENT2 records. In a TPM log the
register is a PCR ("0".."23"); in a CCEL it is a CC measurement register (UEFI 2.10 38.4.1: 0 = MRTD,
1..4 = RTMR[0..3]), named "mrtd", "rtmr0".."rtmr3".

    >>> from pathlib import Path
    >>> from verifier.eventlog import parse, check_replay
    >>> log = parse((Path(__file__).parents[2] / "tests/vectors/tdx/trustee/CCEL_data_ovmf").read_bytes(), "ccel")
    >>> len(log.events), log.events[0].type_name, log.size
    (20, 'EV_EFI_HANDOFF_TABLES2', 2120)
    >>> log.replay()["sha384"]["rtmr2"].hex()[:16]
    '94eaf7a7bf398ed8'
    >>> check_replay(log, {"sha384": log.replay()["sha384"]})  # returns None, or raises

Errors (verifier.errors): bad bytes raise FormatError (malformed_evidence, or unsupported_format for a
legacy SHA-1 log or an unknown kind); a replay that disagrees with the quote raises
VerificationError(eventlog_mismatch). Size caps (MAX_LOG_SIZE, MAX_EVENTS, MAX_EVENT_DATA_SIZE) apply
before and while parsing.
"""

from __future__ import annotations

from ._aael import AAEL_TAG, aael_claims
from ._model import Event, EventLog, Kind, SpecId
from ._parse import parse
from ._replay import check_replay
from ._tables import (
    ALGORITHMS,
    CCEL_REGISTERS,
    EVENT_TYPE_NAMES,
    MAX_EVENT_DATA_SIZE,
    MAX_EVENTS,
    MAX_LOG_SIZE,
    Algorithm,
    event_type_name,
)

__all__ = [
    "AAEL_TAG",
    "ALGORITHMS",
    "CCEL_REGISTERS",
    "EVENT_TYPE_NAMES",
    "MAX_EVENTS",
    "MAX_EVENT_DATA_SIZE",
    "MAX_LOG_SIZE",
    "Algorithm",
    "Event",
    "EventLog",
    "Kind",
    "SpecId",
    "aael_claims",
    "check_replay",
    "event_type_name",
    "parse",
]
