"""audit entries chained after their commit: seq, prev_digest and digest nullable, an index on the unchained ones

The audited transaction now stores its entries unchained and a chainer appends them to the chain in batches
(kbs._audit_chainer), so the chain head is no longer locked by every audited write. Entries chained before this
revision keep their seq and digests and verify as before.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CHAIN_COLUMNS = (("seq", sa.Integer()), ("prev_digest", sa.String(length=64)), ("digest", sa.String(length=64)))


def upgrade() -> None:
    with op.batch_alter_table("kbs_audit", schema=None) as batch_op:
        for name, kind in _CHAIN_COLUMNS:
            batch_op.alter_column(name, existing_type=kind, nullable=True)
    op.create_index(
        "ix_kbs_audit_unchained",
        "kbs_audit",
        ["id"],
        sqlite_where=sa.text("seq IS NULL"),
        postgresql_where=sa.text("seq IS NULL"),
    )


def downgrade() -> None:
    # Entries not chained yet cannot be kept by the older schema: chain them first (a running broker does).
    op.drop_index("ix_kbs_audit_unchained", table_name="kbs_audit")
    with op.batch_alter_table("kbs_audit", schema=None) as batch_op:
        for name, kind in _CHAIN_COLUMNS:
            batch_op.alter_column(name, existing_type=kind, nullable=False)
