"""hash-chained audit log: seq, reason, prev_digest and digest on every entry, and the chain's one-row head

Entries written before this revision are chained on upgrade in the order they were written (their id), as entries
1, 2, ... with no reason; the head then records the last of them. From then on `kbs admin audit verify` checks them
like every later entry: what they said before the upgrade is vouched for only by the upgrade itself.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kbs._audit_chain import GENESIS, AuditRecord, Entry

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PAGE = 1000
_FIELDS = ("actor", "action", "target", "outcome", "at", "claims_digest")


def upgrade() -> None:
    with op.batch_alter_table("kbs_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("prev_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
    seq, prev = _chain_existing_entries()
    with op.batch_alter_table("kbs_audit", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_digest", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("digest", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f("ix_kbs_audit_seq"), ["seq"], unique=True)
    head = op.create_table(
        "kbs_audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": seq, "digest": prev}])


def _chain_existing_entries() -> tuple[int, str]:
    """Chain the entries already stored, oldest (lowest id) first; the last one's seq and digest."""
    bind = op.get_bind()
    audit = sa.table(
        "kbs_audit",
        sa.column("id", sa.Integer()),
        *(sa.column(name) for name in _FIELDS),
        sa.column("seq", sa.Integer()),
        sa.column("prev_digest"),
        sa.column("digest"),
    )
    update = (
        sa.update(audit)
        .where(audit.c.id == sa.bindparam("row_id"))
        .values({name: sa.bindparam(f"new_{name}") for name in (*_FIELDS, "seq", "prev_digest", "digest")})
    )
    seq, prev, last_id = 0, GENESIS, -1
    while True:
        query = sa.select(audit.c.id, *(audit.c[name] for name in _FIELDS)).where(audit.c.id > last_id)
        rows = bind.execute(query.order_by(audit.c.id).limit(_PAGE)).all()
        if not rows:
            return seq, prev
        updates = []
        for row in rows:
            seq += 1
            entry = Entry.make(
                seq, AuditRecord(row.actor, row.action, row.target, row.outcome, row.at, None, row.claims_digest), prev
            )
            # The stored fields become the hashed ones (over-long values SQLite kept are cut to the columns' sizes).
            fitted = entry.record
            updates.append(
                {
                    "row_id": row.id,
                    **{f"new_{name}": getattr(fitted, name) for name in _FIELDS},
                    "new_seq": seq,
                    "new_prev_digest": prev,
                    "new_digest": entry.digest,
                }
            )
            prev, last_id = entry.digest, row.id
        bind.execute(update, updates)


def downgrade() -> None:
    op.drop_table("kbs_audit_head")
    with op.batch_alter_table("kbs_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kbs_audit_seq"))
        batch_op.drop_column("digest")
        batch_op.drop_column("prev_digest")
        batch_op.drop_column("reason")
        batch_op.drop_column("seq")
