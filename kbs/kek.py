"""Key rotation and the keyring's state: `kbs kek rotate` and `kbs kek status`.

A rotation, while every replica keeps serving:

1. a new data key becomes active and the active one `previous` (one transaction); a rerun after a crash finds the
   `previous` keys and carries on with them rather than starting another rotation;
2. it waits `grace_seconds` (longer than `kbs.sealing.ACTIVE_TTL_SECONDS`), after which no replica seals under a
   previous key any more;
3. it re-seals every value of `kbs.storage.SEALED_COLUMNS` not under the active key, in batches: one short read, the
   cryptography with no transaction open, one short write whose UPDATEs are compare-and-swap on the old value (a
   concurrent put wins), then passes again until a pass finds nothing left to re-seal;
4. it retires the previous keys (their wrapped form is deleted: gone), waits `grace_seconds` again and sweeps once
   more with the keys it still holds in memory, for a write that committed under a previous key that late.

A value that does not open (its key retired and gone before this rotation, unknown, or tampered) is reported, never
dropped: the rotation goes on and lists it, and `status` lists it too.

    report = rotate(store, sealer, batch_size=100, grace_seconds=3.0, progress=print)
    report.resealed, report.retired, report.unreadable
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .sealing import Sealer, SealError, kid_of
from .storage import SEALED_COLUMNS, Store

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_GRACE_SECONDS", "RotationReport", "Unreadable", "rotate", "status"]

DEFAULT_BATCH_SIZE = 100
DEFAULT_GRACE_SECONDS = 3.0
# Passes of step 3 before giving up: each pass after the first only meets values written during the one before.
_MAX_PASSES = 5


@dataclass(frozen=True)
class Unreadable:
    table: str
    key: str
    kid: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"table": self.table, "key": self.key, "kid": self.kid, "reason": self.reason}


@dataclass
class RotationReport:
    active: str
    resumed: bool
    retired: list[str] = field(default_factory=list)
    resealed: Counter[str] = field(default_factory=Counter)
    unreadable: dict[tuple[str, str], Unreadable] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "resumed": self.resumed,
            "retired": self.retired,
            "resealed": dict(self.resealed),
            "unreadable": [u.as_json() for u in self.unreadable.values()],
        }


def _names(key: tuple[Any, ...]) -> str:
    return "/".join(str(part) for part in key)


def _pass(
    store: Store,
    sealer: Sealer,
    batch_size: int,
    report: RotationReport,
    progress: Callable[[str], None],
) -> int:
    """Re-seal every value not under the active key that opens; the number of such values this pass met."""
    met = 0
    for column in SEALED_COLUMNS:
        after: tuple[Any, ...] | None = None
        while batch := store.sealed_batch(column, after, batch_size):
            after = batch[-1][0]
            changes = []
            for key, sealed in batch:
                try:
                    kid = kid_of(sealed)
                    if kid == sealer.active_kid:
                        continue
                    plaintext = sealer.open(sealed, column.aad(key))
                except SealError as exc:
                    report.unreadable[(column.name, _names(key))] = Unreadable(
                        column.name, _names(key), _kid_or_unknown(sealed), str(exc)
                    )
                    continue
                changes.append((key, sealed, sealer.seal(plaintext, column.aad(key))))
            met += len(changes)
            if changes:
                replaced = store.replace_sealed(column, changes)
                report.resealed[column.name] += replaced
                progress(f"{column.name}: {replaced} re-sealed under {sealer.active_kid} (up to {_names(after)})")
    return met


def _kid_or_unknown(sealed: bytes) -> str:
    try:
        return kid_of(sealed)
    except SealError:
        return "?"


def rotate(
    store: Store,
    sealer: Sealer,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    progress: Callable[[str], None] = lambda _line: None,
) -> RotationReport:
    sealer.ensure()
    rows = store.data_keys()
    previous = [r.kid for r in rows if r.state == "previous"]
    resumed = bool(previous)
    if resumed:
        progress(f"resuming the rotation away from {', '.join(previous)}")
    else:
        previous = [r.kid for r in rows if r.state == "active"]
        row = sealer.new_key(time.time())
        store.start_data_key(row, replacing=previous)
        progress(f"new data key {row.kid} active; {', '.join(previous)} previous")
    sealer.reload()
    report = RotationReport(active=sealer.active_kid, resumed=resumed)
    time.sleep(grace_seconds)  # every replica's view of the active key is now the new one
    for _ in range(_MAX_PASSES):
        report.unreadable.clear()
        if _pass(store, sealer, batch_size, report, progress) == 0:
            break
    else:
        raise RuntimeError(f"values kept appearing under previous keys for {_MAX_PASSES} passes: run again")
    store.retire_data_keys(previous, time.time())
    report.retired = previous
    progress(f"retired {', '.join(previous) or 'nothing'}")
    time.sleep(grace_seconds)
    report.unreadable.clear()
    _pass(store, sealer, batch_size, report, progress)  # this process still holds the retired keys
    return report


@dataclass
class KeyringStatus:
    keys: list[dict[str, Any]]
    sealed: dict[str, Counter[str]]  # kid -> table -> values
    unreadable: list[Unreadable]

    def as_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "sealed": {kid: dict(tables) for kid, tables in self.sealed.items()},
            "unreadable": [u.as_json() for u in self.unreadable],
        }


def status(store: Store, sealer: Sealer, *, batch_size: int = 1000) -> KeyringStatus:
    """The keys, how many values each seals, and the values whose key is retired (gone) or unknown."""
    sealer.reload()  # every key that is not retired unwraps under the root key, or KeyUnavailableError
    rows = store.data_keys()
    states = {r.kid: r.state for r in rows}
    keys = [
        {
            "kid": r.kid,
            "state": r.state,
            "created_at": r.created_at,
            "retired_at": r.retired_at,
            "wrapped_by": sealer.wrapped_by(r.kid),
        }
        for r in rows
    ]
    sealed: dict[str, Counter[str]] = {}
    unreadable: list[Unreadable] = []
    for column in SEALED_COLUMNS:
        after: tuple[Any, ...] | None = None
        while batch := store.sealed_batch(column, after, batch_size):
            after = batch[-1][0]
            for key, value in batch:
                kid = _kid_or_unknown(value)
                sealed.setdefault(kid, Counter())[column.name] += 1
                if not sealer.loaded(kid):
                    why = "retired: the key is gone" if states.get(kid) == "retired" else "not in the keyring"
                    unreadable.append(Unreadable(column.name, _names(key), kid, f"data key {kid} {why}"))
    return KeyringStatus(keys, sealed, unreadable)
