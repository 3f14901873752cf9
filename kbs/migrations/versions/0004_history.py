"""History: versions of resources, policies and reference-value sets; what is stored now becomes version 1, and a
policy's current row names its version

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Who the history names as the writer of what was stored before versions were kept.
MIGRATED_BY = "migration 0004"


def _history_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.Column("deleted_by", sa.String(length=200), nullable=True),
    ]


def upgrade() -> None:
    resource = op.create_table(
        "kbs_resource_version",
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        *_history_columns(),
        sa.PrimaryKeyConstraint("path", "version"),
    )
    policy = op.create_table(
        "kbs_policy_version",
        sa.Column("policy_id", sa.String(length=300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        *_history_columns(),
        sa.PrimaryKeyConstraint("policy_id", "version"),
    )
    reference = op.create_table(
        "kbs_reference_value_version",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("values_json", sa.String(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        *_history_columns(),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    for table in ("kbs_resource_version", "kbs_policy_version", "kbs_reference_value_version"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_deleted_at"), ["deleted_at"], unique=False)
    with op.batch_alter_table("kbs_policy", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
    _seed(resource, policy, reference)
    op.execute("UPDATE kbs_policy SET version = 1")


def _seed(resource: sa.Table, policy: sa.Table, reference: sa.Table) -> None:
    """What is stored now is version 1 of each key, so a first rollback has something to go back to."""
    bind = op.get_bind()
    common = {"created_by": MIGRATED_BY, "restored_from": None, "deleted_at": None, "deleted_by": None}
    resources = [
        {"path": path, "version": 1, "sealed": sealed, "size": size, "created_at": at, "action": "put", **common}
        for path, sealed, size, at in bind.execute(sa.text("SELECT path, sealed, size, updated_at FROM kbs_resource"))
    ]
    policies = [
        {"policy_id": pid, "version": 1, "source": src, "sha256": digest, "created_at": at, "action": "set", **common}
        for pid, src, digest, at in bind.execute(sa.text("SELECT id, source, sha256, updated_at FROM kbs_policy"))
    ]
    sets: dict[str, tuple[list[str], float | None, float]] = {}
    query = sa.text("SELECT name, value, expires_at, updated_at FROM kbs_reference_value ORDER BY name, value")
    for name, value, expires_at, at in bind.execute(query):
        sets.setdefault(name, ([], expires_at, at))[0].append(value)
    references = [
        {
            "name": name,
            "version": 1,
            "values_json": json.dumps(values),
            "expires_at": expires_at,
            "created_at": at or time.time(),
            "action": "put",
            **common,
        }
        for name, (values, expires_at, at) in sets.items()
    ]
    for table, rows in ((resource, resources), (policy, policies), (reference, references)):
        if rows:
            op.bulk_insert(table, rows)


def downgrade() -> None:
    with op.batch_alter_table("kbs_policy", schema=None) as batch_op:
        batch_op.drop_column("version")
    for table in ("kbs_reference_value_version", "kbs_policy_version", "kbs_resource_version"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_deleted_at"))
        op.drop_table(table)
