"""The audit log: every admin write, every resource release or denial and every TPM enrolment, appended with who,
what, when and which token's claims digest; never a secret."""

from __future__ import annotations

from ..api.schemas import AuditEntry
from ..storage import DecisionRecord, Store
from ..tables import Audit

__all__ = ["MAX_ENTRIES", "AuditLog"]

MAX_ENTRIES = 1000


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        digest: str | None,
        now: float,
        decision: DecisionRecord | None = None,
    ) -> None:
        """Append an entry, and the decision it stands for (a resource release or denial), in one write."""
        self._store.audit(
            Audit(at=now, actor=actor, action=action, target=target, outcome=outcome, claims_digest=digest), decision
        )

    def newest(self, limit: int) -> list[AuditEntry]:
        """The newest entries first; `limit` is clamped to 1..MAX_ENTRIES."""
        rows = self._store.audit_log(max(1, min(limit, MAX_ENTRIES)))
        return [
            AuditEntry(
                id=r.id,
                at=r.at,
                actor=r.actor,
                action=r.action,
                target=r.target,
                outcome=r.outcome,
                claims_digest=r.claims_digest,
            )
            for r in rows
        ]
