"""The storage of history: the versions of resources, policies and reference-value sets (`kbs.tables`, the
`*_version` tables), written in the transaction of the change they record (`kbs.storage` calls these).

A key (a resource path, a policy id, a reference-value name) has versions numbered from 1 in the order they were
written; the newest is the current state unless the key was deleted, in which case the newest version carries who
deleted it and when. History is swept in two ways: a key keeps at most `max_versions` versions (the oldest go
first), and a key deleted more than `retention_seconds` ago loses its whole history (it can no longer be restored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column, Connection, Row, Table, and_, func, select, update
from sqlalchemy import delete as core_delete
from sqlalchemy import insert as core_insert

from .tables import Policy, PolicyVersion, ReferenceValue, ReferenceValueVersion, Resource, ResourceVersion

__all__ = ["POLICIES", "REFERENCE_VALUES", "RESOURCES", "Kind", "VersionRow"]

# Columns every version table has, besides its key and what it records.
_COMMON = ("version", "created_at", "created_by", "action", "restored_from", "deleted_at", "deleted_by")


@dataclass(frozen=True)
class VersionRow:
    """One version of a key: the common columns, and `data`, the kind's own (sealed/size, source/sha256, ...)."""

    key: str
    version: int
    created_at: float
    created_by: str
    action: str
    restored_from: int | None
    deleted_at: float | None
    deleted_by: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Kind:
    """A versioned kind: its version table, the current-state table, and the name of the key column in each."""

    what: str
    versions: Table
    key: str
    current: Table
    current_key: str
    payload: tuple[str, ...]

    @property
    def _key(self) -> Column[Any]:
        return self.versions.c[self.key]

    def _row(self, row: Row[Any]) -> VersionRow:
        values = row._mapping
        common = {name: values[name] for name in _COMMON}
        data = {name: values[name] for name in self.payload}
        return VersionRow(key=values[self.key], data=data, **common)

    # -- reads ------------------------------------------------------------------------------------------------
    def history(self, connection: Connection, key: str) -> list[VersionRow]:
        """Every kept version of `key`, oldest first (empty when it has none)."""
        query = select(self.versions).where(self._key == key).order_by(self.versions.c.version)
        return [self._row(r) for r in connection.execute(query)]

    def get(self, connection: Connection, key: str, version: int) -> VersionRow | None:
        query = select(self.versions).where(and_(self._key == key, self.versions.c.version == version))
        row = connection.execute(query).first()
        return None if row is None else self._row(row)

    def newest(self, connection: Connection, key: str) -> VersionRow | None:
        query = select(self.versions).where(self._key == key).order_by(self.versions.c.version.desc()).limit(1)
        row = connection.execute(query).first()
        return None if row is None else self._row(row)

    # -- writes -----------------------------------------------------------------------------------------------
    def append(
        self,
        connection: Connection,
        key: str,
        data: Mapping[str, Any],
        actor: str,
        action: str,
        now: float,
        restored_from: int | None = None,
    ) -> int:
        """Add the next version of `key` (its number returned); the caller holds the key's turn to write
        (`Store._lock_keys`), so no other writer takes the same number."""
        newest = connection.execute(select(func.max(self.versions.c.version)).where(self._key == key)).scalar()
        version = int(newest or 0) + 1
        values = {
            self.key: key,
            "version": version,
            "created_at": now,
            "created_by": actor,
            "action": action,
            "restored_from": restored_from,
            **data,
        }
        connection.execute(core_insert(self.versions).values(values))
        return version

    def mark_deleted(self, connection: Connection, key: str, actor: str, now: float) -> None:
        """Record on the newest version of `key` that the key was deleted (now, by `actor`)."""
        newest = select(func.max(self.versions.c.version)).where(self._key == key).scalar_subquery()
        connection.execute(
            update(self.versions)
            .where(and_(self._key == key, self.versions.c.version == newest))
            .values(deleted_at=now, deleted_by=actor)
        )

    def sweep_deleted(self, connection: Connection, deleted_before: float) -> int:
        """Delete the history of the keys deleted before `deleted_before` (and not written since); rows removed."""
        live = select(self.current.c[self.current_key])
        expired = select(self._key).group_by(self._key).having(func.max(self.versions.c.deleted_at) < deleted_before)
        statement = core_delete(self.versions).where(and_(self._key.in_(expired), self._key.not_in(live)))
        return int(connection.execute(statement).rowcount)

    def trim(self, connection: Connection, key: str, max_versions: int) -> None:
        """Delete the versions of `key` beyond its newest `max_versions` (0: keep all)."""
        if max_versions > 0:
            newest = select(func.max(self.versions.c.version)).where(self._key == key).scalar_subquery()
            old = and_(self._key == key, self.versions.c.version <= newest - max_versions)
            connection.execute(core_delete(self.versions).where(old))


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _kind(
    what: str, versions: type[Any], key: str, current: type[Any], current_key: str, payload: Sequence[str]
) -> Kind:
    return Kind(what, _table(versions), key, _table(current), current_key, tuple(payload))


RESOURCES = _kind("resource", ResourceVersion, "path", Resource, "path", ("sealed", "size"))
POLICIES = _kind("policy", PolicyVersion, "policy_id", Policy, "id", ("source", "sha256"))
REFERENCE_VALUES = _kind(
    "reference value", ReferenceValueVersion, "name", ReferenceValue, "name", ("values_json", "expires_at")
)
