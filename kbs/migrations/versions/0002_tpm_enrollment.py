"""TPM AK enrolment: pending credential challenges and enrolled AKs

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kbs_tpm_enrollment",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("ak_sha256", sa.String(length=64), nullable=False),
        sa.Column("ek_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kbs_tpm_enrollment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kbs_tpm_enrollment_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "kbs_tpm_ak",
        sa.Column("ak_sha256", sa.String(length=64), nullable=False),
        sa.Column("ek_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ak_sha256"),
    )


def downgrade() -> None:
    op.drop_table("kbs_tpm_ak")
    with op.batch_alter_table("kbs_tpm_enrollment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kbs_tpm_enrollment_expires_at"))
    op.drop_table("kbs_tpm_enrollment")
