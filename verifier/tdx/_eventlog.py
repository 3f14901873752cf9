"""The CC event log (CCEL) that comes with a TDX quote: replayed and compared with the quote's RTMRs.

A log that disagrees with the verified RTMR[0..3] fails verification with eventlog_mismatch (docs/evidence.md
lists it as a reason): a guest that sends a log claims it describes its boot, and a false description is
refused rather than passed to policy. So when verification succeeds with a log, `rtmr_replay_ok` is true; the
claim exists so that policies can require a log (`input.tdx.rtmr_replay_ok == true`). MRTD is not replayed:
it is built by the TDX module from the initial TD memory, not by extending logged digests.
"""

from __future__ import annotations

from ..eventlog import check_replay, parse
from ._quote import RTMR_COUNT, TdReportBody

__all__ = ["replay_ccel"]


def replay_ccel(ccel: bytes, body: TdReportBody) -> dict[str, object]:
    """Parse the CCEL, check its SHA-384 replay against RTMR0..3 and return the parsed log as JSON."""
    log = parse(ccel, "ccel")
    check_replay(log, {"sha384": {f"rtmr{i}": body.rtmr[i] for i in range(RTMR_COUNT)}})
    return log.to_json()
