"""The audit log: every admin write (in the write's own transaction), every secret read, every resource release or
refusal, every attestation outcome, every TPM enrolment and every refused admin call, with who, what, the outcome
(and why, when refused) and the claims digest of the token acted on; never a secret. The entries are hash-chained
(kbs._audit_chain); `verify` walks the chain, `export` pages through it for a log pipeline."""

from __future__ import annotations

import hashlib

from .._audit_chain import AuditRecord, check
from ..api.schemas import AuditEntry, AuditVerification
from ..storage import DecisionRecord, Store
from ..tables import Audit

__all__ = ["MAX_ENTRIES", "AuditLog", "AuditRecord", "guest"]

MAX_ENTRIES = 1000


def guest(client: str, session_id: str | None = None) -> str:
    """A guest as the audit log names it: its address, and its session by a digest (the id itself is a credential)."""
    if not session_id:
        return f"guest {client}"
    return f"guest {client} session {hashlib.sha256(session_id.encode()).hexdigest()[:16]}"


def _entry(row: Audit) -> AuditEntry:
    return AuditEntry(
        id=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        reason=row.reason,
        claims_digest=row.claims_digest,
        prev_digest=row.prev_digest,
        digest=row.digest,
    )


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, record: AuditRecord, decision: DecisionRecord | None = None) -> None:
        """Audit an event that writes nothing else, and the decision it stands for if any (a resource release or
        denial), in a transaction of its own; raises (StorageError) if it fails."""
        self._store.audit(record, decision)

    def newest(self, limit: int) -> list[AuditEntry]:
        """The newest entries first; `limit` is clamped to 1..MAX_ENTRIES."""
        return [_entry(r) for r in self._store.audit_log(max(1, min(limit, MAX_ENTRIES)))]

    def export(self, after_id: int, since: float | None, limit: int) -> list[AuditEntry]:
        """The entries after entry `after_id` (and at or after `since`), oldest first, `limit` clamped to
        1..MAX_ENTRIES: a caller pages on with the last entry's id."""
        return [_entry(r) for r in self._store.audit_entries(after_id, since, max(1, min(limit, MAX_ENTRIES)))]

    def verify(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        head, entries = self._store.audit_chain()
        found = check(entries, head, anchor=anchor)
        if found is None:
            return AuditVerification(intact=True, entries=head[0] if head else 0, head_digest=head[1] if head else None)
        return AuditVerification(
            intact=False,
            entries=head[0] if head else None,
            head_digest=head[1] if head else None,
            broken_at=found.seq,
            problem=found.problem,
        )
