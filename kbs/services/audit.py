"""The audit log: every admin write (in the write's own transaction), every secret read, every resource release or
refusal, every attestation outcome, every TPM enrolment and every refused admin call, with who, what, the outcome
(and why, when refused) and the claims digest of the token acted on; never a secret. The entries are hash-chained
(kbs._audit_chain) after their commit (kbs._audit_sequencer); `verify` walks the chain and looks for entries left
unchained, `export` pages through the chain for a log pipeline. Each first runs a chain pass, so that it sees every
entry committed before it was asked."""

from __future__ import annotations

import hashlib
import logging
import time

from .._audit_chain import AuditRecord, Entry, check
from .._audit_sequencer import CHAIN_GRACE_SECONDS
from ..api.schemas import AuditEntry, AuditVerification
from ..storage import DecisionRecord, StorageError, Store

__all__ = ["MAX_ENTRIES", "AuditLog", "AuditRecord", "guest"]

MAX_ENTRIES = 1000
# How long a read of the log waits for the chain's head that another replica's chain pass holds (a pass holds it
# for one batch, milliseconds): past it, the read goes on and entries that pass had not reached stay unchained.
CHAIN_WAIT_SECONDS = 2.0
# Entries left unchained past the grace that `verify` names (it counts them all).
_NAMED = 10

log = logging.getLogger("kbs")


def guest(client: str, session_id: str | None = None) -> str:
    """A guest as the audit log names it: its address, and its session by a digest (the id itself is a credential)."""
    if not session_id:
        return f"guest {client}"
    return f"guest {client} session {hashlib.sha256(session_id.encode()).hexdigest()[:16]}"


def _entry(entry: Entry) -> AuditEntry:
    record = entry.record
    return AuditEntry(
        id=entry.seq,
        at=record.at,
        actor=record.actor,
        action=record.action,
        target=record.target,
        outcome=record.outcome,
        reason=record.reason,
        claims_digest=record.claims_digest,
        prev_digest=entry.prev,
        digest=entry.digest,
    )


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, record: AuditRecord, decision: DecisionRecord | None = None) -> None:
        """Audit an event that writes nothing else, and the decision it stands for if any (a resource release or
        denial), in a transaction of its own; raises (StorageError) if it fails."""
        self._store.audit(record, decision)

    def newest(self, limit: int) -> list[AuditEntry]:
        """The newest chained entries first; `limit` is clamped to 1..MAX_ENTRIES."""
        self._chain()
        return [_entry(r) for r in self._store.audit_log(max(1, min(limit, MAX_ENTRIES)))]

    def export(self, after_id: int, since: float | None, limit: int) -> list[AuditEntry]:
        """The chained entries after entry `after_id` (its place in the chain, not the database's id), and at or
        after `since`, in chain order, `limit` clamped to 1..MAX_ENTRIES: a caller pages on with the last entry's
        id. Entries not chained yet are left out: the chain only grows at its end, so the next page has them."""
        self._chain()
        return [_entry(r) for r in self._store.audit_entries(after_id, since, max(1, min(limit, MAX_ENTRIES)))]

    def verify(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """The chain checked from entry 1 to its head; then the entries committed more than CHAIN_GRACE_SECONDS ago
        and still unchained, a failure too (a live chainer never leaves one)."""
        self._chain()
        head, entries = self._store.audit_chain()
        found = check(entries, head, anchor=anchor)
        unchained = self._store.unchained_audit(MAX_ENTRIES)
        problem = None if found is None else found.problem
        late = [(row_id, at) for row_id, at in unchained if at < time.time() - CHAIN_GRACE_SECONDS]
        if problem is None and late:
            named = ", ".join(str(row_id) for row_id, _ in late[:_NAMED]) + (", ..." if len(late) > _NAMED else "")
            problem = (
                f"{len(late)} entries committed more than {CHAIN_GRACE_SECONDS:.0f} s ago are not chained (database "
                f"ids {named}; the oldest at {min(at for _, at in late):.3f}): no chainer is running, or one is stuck "
                "holding the chain's head"
            )
        return AuditVerification(
            intact=problem is None,
            entries=head[0] if head else None,
            head_digest=head[1] if head else None,
            unchained=len(unchained),
            broken_at=None if found is None else found.seq,
            problem=problem,
        )

    def _chain(self) -> None:
        """A chain pass before a read of the log; when it cannot run (the head row gone or behind, the database
        refusing), the read goes on and `verify` shows what is wrong."""
        try:
            self._store.chain_audit(wait_seconds=CHAIN_WAIT_SECONDS)
        except StorageError as exc:
            log.warning("audit chain pass before a read failed: %s", exc)
