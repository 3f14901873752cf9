"""One step of the audit chain's sequencer: append a batch of committed, unchained entries to the hash chain.

An audited transaction stores its entries unchained (no seq, no digest) beside its changes, so the chain's head is
not locked by every audited write and fail-closed stays what it was (no entry stored, no change stored). A chain
step then, in one short transaction of its own:

1. locks the head row, `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL: when another replica's step holds it,
   this one does nothing and says so (`held`); on SQLite the write transaction (BEGIN IMMEDIATE) is the lock;
2. reads up to `limit` unchained entries, lowest id first, among those committed when it reads them;
3. gives them seq head+1, head+2, ... with prev and digest as kbs._audit_chain defines them, and moves the head.

The chain's order is this seq, not the id: PostgreSQL hands ids out before commit, so an entry with a lower id can
become visible after a higher one was chained; it then simply gets the next seq. A step chains only what it reads:
what the entry says is hashed as it is stored, when the step runs.

What the chain cannot vouch for, then: an entry between its commit and its chaining. Whoever can write the database in
that window can edit or delete it unseen. Measured (bench/audit_chain.py: two replicas, eight writers committing the
resource step's audited write, about 900 a second on PostgreSQL, which is about 450 handshakes a second and more than
the broker serves on this 2-core machine; load average 5 to 7): from commit to chained, p50 114 ms and p99 430 ms (the
medians of 3 rounds), most of it the chainer's BATCH_SECONDS (kbs._audit_chainer) between passes and, with two replicas,
a pass tried again after the other replica's. An entry left unchained for longer than CHAIN_GRACE_SECONDS is what `kbs
admin audit verify` reports as a failure: every replica runs a pass every second (kbs._audit_chainer), so such an entry
means no chainer is running, or one is stuck holding the head.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from ._audit_chain import AuditRecord, Entry
from .tables import Audit, AuditHead

__all__ = ["CHAIN_GRACE_SECONDS", "ChainHeadError", "ChainStep", "chain_batch"]

# How long a committed entry may wait for its chaining before `verify` calls it a failure: ten of the periodic
# passes every replica runs (kbs._audit_chainer), and room for the clocks of two replicas to differ by a few seconds
# (an entry's `at` is its writer's clock, the check runs on the verifying replica's).
CHAIN_GRACE_SECONDS = 10.0

_AUDIT = Audit.__table__  # type: ignore[attr-defined]
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_HEAD_ID = 1
_FIELDS = ("id", "at", "actor", "action", "target", "outcome", "reason", "claims_digest")

_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.digest).where(_HEAD.c.id == _HEAD_ID).with_for_update(skip_locked=True)
_HEAD_EXISTS = select(_HEAD.c.id).where(_HEAD.c.id == _HEAD_ID)
_UNCHAINED = (
    select(*(_AUDIT.c[name] for name in _FIELDS))
    .where(_AUDIT.c.seq.is_(None))
    .order_by(_AUDIT.c.id)
    .limit(bindparam("batch"))
)
_CHAIN = (
    update(_AUDIT)
    .where(_AUDIT.c.id == bindparam("row_id"), _AUDIT.c.seq.is_(None))
    .values(seq=bindparam("new_seq"), prev_digest=bindparam("new_prev"), digest=bindparam("new_digest"))
)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(seq=bindparam("seq"), digest=bindparam("digest"))


class ChainHeadError(Exception):
    """The chain's head row is missing, or behind the stored entries: nothing can be chained until it is repaired
    (`kbs admin audit verify` names the break)."""


@dataclass(frozen=True)
class ChainStep:
    """What a chain step (or pass) did: the entries it chained, and whether it found the head held by another."""

    chained: int
    held: bool = False


def chain_batch(connection: Connection, limit: int) -> ChainStep:
    """Chain up to `limit` unchained entries after the head, inside the caller's write transaction."""
    head = connection.execute(_LOCK_HEAD).first()
    if head is None:
        if connection.execute(_HEAD_EXISTS).first() is None:
            raise ChainHeadError("the audit chain's head row is missing")
        return ChainStep(0, held=True)
    rows = connection.execute(_UNCHAINED, {"batch": limit}).all()
    if not rows:
        return ChainStep(0)
    seq, prev = int(head.seq), str(head.digest)
    updates = []
    for row in rows:
        seq += 1
        record = AuditRecord(row.actor, row.action, row.target, row.outcome, row.at, row.reason, row.claims_digest)
        entry = Entry.make(seq, record, prev)
        updates.append({"row_id": row.id, "new_seq": seq, "new_prev": prev, "new_digest": entry.digest})
        prev = entry.digest
    try:
        connection.execute(_CHAIN, updates)
    except IntegrityError as exc:
        # seq is unique: the head is behind stored entries (rewound or rewritten by hand); chaining stops there.
        raise ChainHeadError(f"the audit chain's head (entry {head.seq}) is behind the stored entries") from exc
    connection.execute(_MOVE_HEAD, {"seq": seq, "digest": prev})
    return ChainStep(len(rows))
