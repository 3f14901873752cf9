"""The audit log's hash chain: what an entry is, its canonical encoding and digest, and the check of a whole chain.

Entry n (n = 1, 2, ...) stores `prev` = the digest of entry n-1 (GENESIS for entry 1) and its own
`digest = SHA-256("veritee-audit-v1\\n" || canonical JSON of {seq, at, actor, action, target, outcome, reason,
claims_digest, prev})`. A one-row head (the newest entry's number and digest) is kept beside the log and moved in
the transaction that appends (a chain step after the entries' own commit, kbs._audit_sequencer), so removing
entries at the tail is caught as well as an edited, removed or reordered entry in the middle:

>>> a = Entry.make(1, AuditRecord("admin (admin)", "resource.put", "repo/key/1", "ok", 1.5), GENESIS)
>>> b = Entry.make(2, AuditRecord("admin (admin)", "resource.delete", "repo/key/1", "ok", 2.5), a.digest)
>>> check([a, b], head=(2, b.digest)) is None
True
>>> check([b], head=(2, b.digest))
Break(seq=1, problem='entry 1 is missing (the next stored entry is 2)')
>>> check([a], head=(2, b.digest)).problem.startswith("entries 2..2 are missing at the tail")
True

What it cannot catch: someone able to write the database can rewrite every entry after a point and the head
consistently (SHA-256 needs no key). An exported copy (`kbs admin audit export`) kept elsewhere holds the digests
that were: `check` from an exported entry on (`anchor`) shows a rewritten history no longer leads to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["GENESIS", "LIMITS", "AuditRecord", "Break", "Entry", "check"]

GENESIS = "0" * 64
_DOMAIN = b"veritee-audit-v1\n"
# The columns' sizes (kbs.tables.Audit): a value is cut to them before it is hashed, so what is stored is what is
# hashed, and an over-long client-supplied name cannot make the audit write (and so the operation) fail.
LIMITS = {"actor": 200, "action": 64, "target": 400, "outcome": 32, "reason": 200}


@dataclass(frozen=True)
class AuditRecord:
    """What a service records: who, did what, to what, with what outcome (and why, when refused), the claims digest
    of the attestation token it acted on; never a secret."""

    actor: str
    action: str
    target: str
    outcome: str
    at: float
    reason: str | None = None
    claims_digest: str | None = None

    def fitted(self) -> AuditRecord:
        def cut(name: str, value: str) -> str:
            limit = LIMITS[name]
            return value if len(value) <= limit else value[: limit - 1] + "…"

        return AuditRecord(
            actor=cut("actor", self.actor),
            action=cut("action", self.action),
            target=cut("target", self.target),
            outcome=cut("outcome", self.outcome),
            at=self.at,
            reason=None if self.reason is None else cut("reason", self.reason),
            claims_digest=self.claims_digest,
        )


@dataclass(frozen=True)
class Entry:
    seq: int
    record: AuditRecord
    prev: str
    digest: str

    @classmethod
    def make(cls, seq: int, record: AuditRecord, prev: str) -> Entry:
        fitted = record.fitted()
        return cls(seq, fitted, prev, digest(seq, fitted, prev))


def digest(seq: int, record: AuditRecord, prev: str) -> str:
    # JSON with sorted keys and no spaces: one encoding per value (floats as Python's shortest round-trip repr).
    canonical = json.dumps(
        {
            "seq": seq,
            "at": record.at,
            "actor": record.actor,
            "action": record.action,
            "target": record.target,
            "outcome": record.outcome,
            "reason": record.reason,
            "claims_digest": record.claims_digest,
            "prev": prev,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(_DOMAIN + canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first entry at which the chain does not hold, and why."""

    seq: int
    problem: str


def check(
    entries: Iterable[Entry], head: tuple[int, str] | None, *, anchor: tuple[int, str] | None = None
) -> Break | None:
    """The first break in `entries` (in stored order, from entry 1), or None when the chain is intact up to `head`
    (the head row's entry count and digest; None when the head row is gone). With `anchor` (an entry number and the
    digest an export recorded), that entry must still be in the chain with that digest."""
    expected_seq, prev = 1, GENESIS
    for entry in entries:
        if head is not None and entry.seq > head[0]:
            break  # appended after the head was read
        if entry.seq < expected_seq:
            return Break(entry.seq, f"entry {entry.seq} is out of order (after entry {expected_seq - 1})")
        if entry.seq > expected_seq:
            return Break(expected_seq, f"entry {expected_seq} is missing (the next stored entry is {entry.seq})")
        if entry.prev != prev:
            return Break(
                entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1} (its prev digest differs)"
            )
        if digest(entry.seq, entry.record, entry.prev) != entry.digest:
            return Break(entry.seq, f"entry {entry.seq} was altered (its digest does not match its fields)")
        if anchor is not None and entry.seq == anchor[0] and entry.digest != anchor[1]:
            return Break(entry.seq, f"entry {entry.seq} is not the entry the anchor recorded (history rewritten)")
        expected_seq, prev = expected_seq + 1, entry.digest
    count = expected_seq - 1
    if head is None:
        return Break(expected_seq, "the chain head row is missing")
    if count < head[0]:
        return Break(
            expected_seq,
            f"entries {expected_seq}..{head[0]} are missing at the tail "
            f"(the chain head says {head[0]} entries, digest {head[1][:12]}...)",
        )
    if head[1] != prev:
        return Break(count, f"entry {count} is not the chain head's entry (its digest differs from the head's)")
    if anchor is not None and anchor[0] > count:
        return Break(anchor[0], f"the anchor's entry {anchor[0]} is beyond the chain's {count} entries")
    return None
