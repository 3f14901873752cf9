"""Recorded attestation and resource decisions

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kbs_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("denied", sa.Boolean(), nullable=False),
        sa.Column("tee", sa.String(length=32), nullable=True),
        sa.Column("path", sa.String(length=400), nullable=True),
        sa.Column("policy_id", sa.String(length=300), nullable=False),
        sa.Column("policy_sha256", sa.String(length=64), nullable=False),
        sa.Column("input", sa.String(), nullable=True),
        sa.Column("reference_values", sa.String(), nullable=True),
        sa.Column("trust_vector", sa.String(), nullable=True),
        sa.Column("detail", sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kbs_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kbs_decision_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_kbs_decision_denied"), ["denied"], unique=False)
        batch_op.create_index(batch_op.f("ix_kbs_decision_path"), ["path"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kbs_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kbs_decision_path"))
        batch_op.drop_index(batch_op.f("ix_kbs_decision_denied"))
        batch_op.drop_index(batch_op.f("ix_kbs_decision_at"))
    op.drop_table("kbs_decision")
