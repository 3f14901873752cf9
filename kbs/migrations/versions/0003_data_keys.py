"""Keyring of data keys under the root key-encryption key; every sealed value names the key that sealed it

Values sealed before this revision were sealed by the root key itself: they are tagged with the key id "root", which
the keyring opens with the root key, until `kbs kek rotate` re-seals them under a data key.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# kbs.sealing's header, spelled out: a migration must keep meaning what it meant when it was written.
_ROOT_HEADER = b"\x01" + bytes([len(b"root")]) + b"root"
# (table, primary key, sealed column) of every value sealed at this revision.
_SEALED = (("kbs_resource", "path", "sealed"), ("kbs_signing_key", "kid", "sealed_private_key"))


def upgrade() -> None:
    op.create_table(
        "kbs_data_key",
        sa.Column("kid", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    _retag(lambda sealed: _ROOT_HEADER + sealed)


def downgrade() -> None:
    def untag(sealed: bytes) -> bytes:
        if not sealed.startswith(_ROOT_HEADER):
            raise RuntimeError("a value is sealed under a data key: the schema before 0003 cannot hold it")
        return sealed.removeprefix(_ROOT_HEADER)

    _retag(untag)
    op.drop_table("kbs_data_key")


def _retag(change: Callable[[bytes], bytes]) -> None:
    connection = op.get_bind()
    for table, key, column in _SEALED:
        rows = connection.execute(sa.text(f"SELECT {key}, {column} FROM {table}")).all()  # noqa: S608 (fixed names)
        for pk, sealed in rows:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :sealed WHERE {key} = :pk"),  # noqa: S608
                {"sealed": change(bytes(sealed)), "pk": pk},
            )
