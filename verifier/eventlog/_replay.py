"""Replay (extend each event's digest into its register) and the comparison with quoted registers.

Extend is the TPM2_PCR_Extend rule (TPM 2.0 Part 1, 17.7): new = H(old || digest). The TDX module's
TDG.MR.RTMR.EXTEND is the same rule with SHA-384 over 48-byte registers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import Reason, VerificationError
from ._aael import check_aael_digests
from ._tables import CCEL_REGISTERS, EV_NO_ACTION, Algorithm

if TYPE_CHECKING:
    from ._model import Event, EventLog

__all__ = ["check_replay", "replay_events"]

CCEL_BANK = "sha384"
# MRTD is built by the TDX module before the firmware runs; the CCEL lists its events for information only.
_CCEL_NOT_REPLAYED = CCEL_REGISTERS[0]


def replay_events(
    kind: str,
    algorithms: Sequence[Algorithm],
    events: Sequence[Event],
    startup_locality: int | None,
) -> dict[str, dict[str, bytes]]:
    banks = [a for a in algorithms if a.new is not None]
    if kind == "ccel":
        banks = [a for a in banks if a.name == CCEL_BANK]
    out: dict[str, dict[str, bytes]] = {a.name: {} for a in banks}
    for event in events:
        if event.event_type == EV_NO_ACTION or event.register == _CCEL_NOT_REPLAYED:
            continue
        for alg in banks:
            new = alg.new
            assert new is not None  # narrowed by the filter above
            values = out[alg.name]
            old = values.get(event.register)
            if old is None:
                old = _initial(alg.digest_size, event.register, kind, startup_locality)
            h = new()
            h.update(old)
            # The parser guarantees every record carries every bank of the Spec ID table (PFP 10.2.2).
            h.update(event.digests[alg.name])
            values[event.register] = h.digest()
    return {bank: values for bank, values in out.items() if values}


# PC Client Platform TPM Profile (PTP) 1.05, table "PCR Initial Values": PCRs 17..22 (the DRTM PCRs) are all
# ones after TPM2_Startup until a dynamic launch resets them; runtime logs (AAEL in PCR 17) start from there.
_DRTM_PCRS = frozenset(str(index) for index in range(17, 23))


def _initial(size: int, register: str, kind: str, startup_locality: int | None) -> bytes:
    # PFP 10.4.5.3: a StartupLocality event means PCR0 was reset with the locality in its last byte.
    if kind == "tcg2" and register == "0" and startup_locality is not None:
        return bytes(size - 1) + bytes([startup_locality])
    if kind == "tcg2" and register in _DRTM_PCRS:
        return b"\xff" * size
    return bytes(size)


def check_replay(log: EventLog, quoted: Mapping[str, Mapping[str, bytes]]) -> None:
    """Compare the log's replay with quoted registers; return None or raise.

    Every register that the log extends and the quote carries (same bank name, same register name: "0".."23"
    for PCRs, "rtmr0".."rtmr3" for TDX) must match. Raises VerificationError(EVENTLOG_MISMATCH) naming each
    bank/register with the replayed (got) and quoted (expected) values, or when the log and the quote have
    no register in common, since then the log proves nothing about the quote.
    """
    replayed = log.replay()
    compared = 0
    mismatches: list[str] = []
    for bank_key, registers in quoted.items():
        bank = str(bank_key).lower()
        values = replayed.get(bank)
        if values is None:
            continue
        for register_key, expected in registers.items():
            register = str(register_key)
            got = values.get(register)
            if got is None:
                continue
            compared += 1
            if got != bytes(expected):
                mismatches.append(
                    f"{bank} register {register}: event log replays to {got.hex()}, quote has {bytes(expected).hex()}"
                )
    if mismatches:
        raise VerificationError(Reason.EVENTLOG_MISMATCH, "; ".join(mismatches))
    check_aael_digests(log.events)
    if compared == 0:
        extended = {bank: sorted(values) for bank, values in replayed.items()}
        carried = {str(bank): sorted(str(r) for r in regs) for bank, regs in quoted.items()}
        raise VerificationError(
            Reason.EVENTLOG_MISMATCH,
            f"{log.kind} event log extends {extended}, the quote carries {carried}: no register in common",
        )
