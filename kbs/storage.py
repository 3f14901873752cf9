"""The broker's storage: one SQLModel database (SQLite by default, PostgreSQL in production).

A protocol step is at most one read transaction and one short write transaction, never one held open across
verification or cryptography: a service reads what the step needs in one `Store.read()` (`Reads`), does its work
with no transaction open, then makes every change of the step in one `Store.write()` (`Writes`): the session's
state, and the audit row of what it decided, together. The statements of that path are built once, at import (so
SQLAlchemy compiles each once and PostgreSQL prepares it, `kbs._engine`).

The state machine of a session (challenged -> attested, or challenged -> consumed when its evidence is refused)
moves by conditional UPDATEs, so two replicas can never both accept one nonce.

    with store.read() as reads:
        session = reads.session(session_id)
    ...  # verify, sign: no transaction open
    with store.write() as writes:
        if not writes.attest_session(session_id, nonce, token, now):
            ...  # another request spent the nonce first
        writes.add_audit(AuditRecord(...))

Audit entries are stored unchained with the transaction's changes, when its block ends: if that fails, the whole
transaction rolls back and the operation fails with its audit. After the commit the store sets `audit_committed`,
and a chain pass (`chain_audit`, run by kbs._audit_chainer off the request's path) appends the committed entries to
the hash chain (kbs._audit_sequencer) in one short transaction per batch.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Table, and_, bindparam, or_, text, tuple_
from sqlalchemy import delete as core_delete
from sqlalchemy import insert as core_insert
from sqlalchemy import select as core_select
from sqlalchemy import update as core_update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.sql.expression import BindParameter, ClauseElement
from sqlmodel import Session as DbSession
from sqlmodel import col, delete, select, update

from ._audit_chain import AuditRecord, Entry
from ._audit_sequencer import ChainHeadError, ChainStep, chain_batch
from ._engine import CHAIN, WRITE, Prepared, TransactionCounter, TransactionCounts, make_engine
from ._history import POLICIES, REFERENCE_VALUES, RESOURCES, Kind, VersionRow
from .tables import (
    Audit,
    AuditHead,
    DataKey,
    Decision,
    Policy,
    PolicyVersion,
    ReferenceValue,
    Resource,
    ResourceVersion,
    Session,
    SigningKey,
    TpmAk,
    TpmEnrollment,
)

__all__ = [
    "DEFAULT_THREADS",
    "POLICIES",
    "REFERENCE_VALUES",
    "RESOURCES",
    "SEALED_COLUMNS",
    "ConflictError",
    "DecisionFilter",
    "DecisionRecord",
    "HistoryConflictError",
    "Kind",
    "NotInHistoryError",
    "PolicyRecord",
    "Reads",
    "ResourceRecord",
    "Retention",
    "SealedColumn",
    "SessionRecord",
    "StorageError",
    "Store",
    "TransactionCounts",
    "VersionRow",
    "Writes",
    "normalise_url",
]

DEFAULT_THREADS = 4
_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_467_420  # PostgreSQL advisory lock id guarding schema upgrades between replicas


class StorageError(Exception):
    """The database cannot be reached or refused an operation (the API answers 503)."""


class ConflictError(Exception):
    """A state transition that another request already made (e.g. a nonce already consumed)."""


def normalise_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


# -- the records of the protocol's path ------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRecord:
    id: str
    nonce: str
    tee: str
    state: str  # challenged | consumed | attested
    expires_at: float
    token: str | None


@dataclass(frozen=True)
class PolicyRecord:
    id: str
    source: str
    sha256: str
    version: int | None


@dataclass(frozen=True)
class ResourceRecord:
    path: str
    sealed: bytes


@dataclass(frozen=True)
class DecisionRecord:
    """A decision to record (`kbs.tables.Decision` without its id); the JSON members are already serialised."""

    at: float
    kind: str
    outcome: str
    denied: bool
    tee: str | None
    path: str | None
    policy_id: str
    policy_sha256: str
    input: str | None
    reference_values: str | None
    trust_vector: str | None
    detail: str | None


@dataclass(frozen=True)
class DecisionFilter:
    kind: str | None = None
    denied: bool = False
    since: float | None = None
    path: str | None = None
    limit: int = 100


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


_SESSION = _table(Session)
_POLICY = _table(Policy)
_REFERENCE = _table(ReferenceValue)
_RESOURCE = _table(Resource)
_AUDIT = _table(Audit)
_AUDIT_HEAD = _table(AuditHead)
_DECISION = _table(Decision)
_DATA_KEY = _table(DataKey)


@dataclass(frozen=True)
class SealedColumn:
    """A column of values sealed by the keyring (`kbs.sealing`): its table, the primary key that names a row, and
    the AAD each value was sealed with (what the value is, so a value moved to another row does not open)."""

    table: Table
    key: tuple[str, ...]
    column: str
    aad: Callable[[tuple[Any, ...]], str]

    @property
    def name(self) -> str:
        return str(self.table.name)


# Every sealed value the broker stores: `kbs kek rotate` re-seals each of them, `kbs kek status` counts them.
SEALED_COLUMNS = (
    SealedColumn(_RESOURCE, ("path",), "sealed", lambda key: f"resource:{key[0]}"),
    # Every kept version of a resource, sealed as the current value was (`kbs._history`).
    SealedColumn(_table(ResourceVersion), ("path", "version"), "sealed", lambda key: f"resource:{key[0]}"),
    SealedColumn(_table(SigningKey), ("kid",), "sealed_private_key", lambda key: f"signing-key:{key[0]}"),
)

_SELECT_SESSION = core_select(
    _SESSION.c.id, _SESSION.c.nonce, _SESSION.c.tee, _SESSION.c.state, _SESSION.c.expires_at, _SESSION.c.token
).where(_SESSION.c.id == bindparam("id"))
_SELECT_REFERENCE_VALUES = (
    core_select(_REFERENCE.c.name, _REFERENCE.c.value)
    .where(or_(_REFERENCE.c.expires_at.is_(None), _REFERENCE.c.expires_at > bindparam("now")))
    .order_by(_REFERENCE.c.name, _REFERENCE.c.value)
)
_SELECT_RESOURCE = core_select(_RESOURCE.c.path, _RESOURCE.c.sealed).where(_RESOURCE.c.path == bindparam("path"))
_SESSION_COLUMNS = ("id", "nonce", "tee", "state", "created_at", "expires_at", "token")
_INSERT_SESSION = core_insert(_SESSION).values({name: bindparam(name) for name in _SESSION_COLUMNS})
_ATTEST_SESSION = (
    core_update(_SESSION)
    .where(
        and_(
            _SESSION.c.id == bindparam("sid"),
            _SESSION.c.nonce == bindparam("nonce_sent"),
            _SESSION.c.state == "challenged",
            _SESSION.c.expires_at > bindparam("now"),
        )
    )
    .values(state="attested", token=bindparam("token_issued"))
)
_SPEND_NONCE = (
    core_update(_SESSION)
    .where(
        and_(
            _SESSION.c.id == bindparam("sid"),
            _SESSION.c.nonce == bindparam("nonce_sent"),
            _SESSION.c.state == "challenged",
        )
    )
    .values(state="consumed")
)
_SWEEP_SESSIONS = core_delete(_SESSION).where(_SESSION.c.expires_at <= bindparam("now"))
_COUNT_SESSIONS = core_select(text("count(*)")).select_from(_SESSION)
# The id is the database's; seq, prev_digest and digest are the chainer's (null until it chains the entry).
_AUDIT_COLUMNS = ("at", "actor", "action", "target", "outcome", "reason", "claims_digest")
_INSERT_AUDIT = core_insert(_AUDIT).values({name: bindparam(name) for name in _AUDIT_COLUMNS})
_HEAD_ID = 1
_AUDIT_PAGE = 1000
# Entries one chain transaction appends at most: the head's lock is held for one batch, then let go.
_CHAIN_BATCH = 500
# How often a chain pass told to wait tries again for the head another chainer holds.
_CHAIN_RETRY_SECONDS = 0.01
# The connection's info key: this transaction stored audit entries (the chainer is told after its commit).
_AUDITED = "veritee_audited"
_DECISION_COLUMNS = tuple(DecisionRecord.__dataclass_fields__)  # the id is the database's
_INSERT_DECISION = core_insert(_DECISION).values({name: bindparam(f"v_{name}") for name in _DECISION_COLUMNS})


def _select_policies(count: int) -> ClauseElement:
    """The policies among `count` ids (bound as p0, p1, ...): a fixed arity, so one SQL text per arity."""
    ids: list[BindParameter[str]] = [bindparam(f"p{i}") for i in range(count)]
    columns = (_POLICY.c.id, _POLICY.c.source, _POLICY.c.sha256, _POLICY.c.version)
    return core_select(*columns).where(_POLICY.c.id.in_(ids))


class _Statements:
    """The protocol path's statements, compiled once for the store's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.select_session = Prepared(_SELECT_SESSION, dialect)
        self.select_reference_values = Prepared(_SELECT_REFERENCE_VALUES, dialect)
        self.select_resource = Prepared(_SELECT_RESOURCE, dialect)
        self.insert_session = Prepared(_INSERT_SESSION, dialect)
        self.attest_session = Prepared(_ATTEST_SESSION, dialect)
        self.spend_nonce = Prepared(_SPEND_NONCE, dialect)
        self.sweep_sessions = Prepared(_SWEEP_SESSIONS, dialect)
        self.count_sessions = Prepared(_COUNT_SESSIONS, dialect)
        self.insert_audit = Prepared(_INSERT_AUDIT, dialect)
        self.insert_decision = Prepared(_INSERT_DECISION, dialect)
        self._select_policies: dict[int, Prepared] = {}
        self._lock = threading.Lock()

    def select_policies(self, count: int) -> Prepared:
        statement = self._select_policies.get(count)
        if statement is None:
            with self._lock:
                statement = self._select_policies.setdefault(count, Prepared(_select_policies(count), self.dialect))
        return statement


class Reads:
    """The queries of one read transaction (`Store.read()`)."""

    def __init__(self, connection: Connection, statements: _Statements) -> None:
        self.connection = connection
        self._sql = statements

    def session(self, session_id: str) -> SessionRecord | None:
        row = self._sql.select_session(self.connection, {"id": session_id}).first()
        return None if row is None else SessionRecord(*row)

    def first_policy(self, policy_ids: Sequence[str]) -> PolicyRecord | None:
        """The first of `policy_ids` (in that order of preference) that exists, in one query."""
        select = self._sql.select_policies(len(policy_ids))
        found = select(self.connection, {f"p{i}": policy_id for i, policy_id in enumerate(policy_ids)})
        rows = {r[0]: PolicyRecord(*r) for r in found}
        return next((rows[i] for i in policy_ids if i in rows), None)

    def reference_values(self, now: float) -> dict[str, list[str]]:
        """name -> accepted values, without those expired at `now`."""
        out: dict[str, list[str]] = {}
        for name, value in self._sql.select_reference_values(self.connection, {"now": now}):
            out.setdefault(name, []).append(value)
        return out

    def resource(self, path: str) -> ResourceRecord | None:
        row = self._sql.select_resource(self.connection, {"path": path}).first()
        return None if row is None else ResourceRecord(row[0], bytes(row[1]))

    def session_count(self) -> int:
        return int(self._sql.count_sessions(self.connection, {}).scalar_one())


class Writes:
    """The changes of one write transaction (`Store.write()`): all of them commit, or none."""

    def __init__(self, connection: Connection, statements: _Statements) -> None:
        self.connection = connection
        self._sql = statements
        self.audit: list[AuditRecord] = []

    def add_session(self, session_id: str, nonce: str, tee: str, now: float, expires_at: float) -> None:
        values = (session_id, nonce, tee, "challenged", now, expires_at, None)
        self._sql.insert_session(self.connection, dict(zip(_SESSION_COLUMNS, values, strict=True)))

    def attest_session(self, session_id: str, nonce: str, token: str, now: float) -> bool:
        """challenged -> attested with `token`; False when the nonce was spent (or the session expired) meanwhile."""
        values = {"sid": session_id, "nonce_sent": nonce, "token_issued": token, "now": now}
        return self._sql.attest_session(self.connection, values).rowcount == 1

    def spend_nonce(self, session_id: str, nonce: str) -> None:
        """challenged -> consumed: the session's evidence was refused, its nonce is not offered again."""
        self._sql.spend_nonce(self.connection, {"sid": session_id, "nonce_sent": nonce})

    def sweep_sessions(self, now: float) -> int:
        return int(self._sql.sweep_sessions(self.connection, {"now": now}).rowcount)

    def add_audit(self, record: AuditRecord) -> None:
        """Audit `record` with this transaction's changes (stored when the block ends, chained after the commit)."""
        self.audit.append(record)

    def add_decision(self, decision: DecisionRecord) -> None:
        self._sql.insert_decision(self.connection, {f"v_{name}": getattr(decision, name) for name in _DECISION_COLUMNS})


def _insert_audit(connection: Connection, sql: _Statements, records: Sequence[AuditRecord]) -> None:
    """Store `records` unchained, cut to their columns' sizes (what is stored is what the chainer hashes), and mark
    the transaction audited so that its commit wakes the chainer."""
    for record in records:
        fitted = record.fitted()
        sql.insert_audit(connection, {name: getattr(fitted, name) for name in _AUDIT_COLUMNS})
    if records:
        connection.info[_AUDITED] = True


@dataclass(frozen=True)
class Retention:
    """How long history is kept: a deleted key is restorable for `seconds` after its deletion, then its history
    is swept; every key keeps at most `max_versions` versions (0: all)."""

    seconds: float = 30 * 86400
    max_versions: int = 50


def _chained(row: Audit) -> Entry:
    """A chained entry as stored (its digest as stored too: `check` recomputes it)."""
    if row.seq is None or row.prev_digest is None or row.digest is None:
        raise StorageError(f"audit entry with database id {row.id} is not chained")  # the queries ask for chained
    record = AuditRecord(row.actor, row.action, row.target, row.outcome, row.at, row.reason, row.claims_digest)
    return Entry(row.seq, record, row.prev_digest, row.digest)


class NotInHistoryError(Exception):
    """The version asked for is not kept (never written, or swept after the retention)."""


class HistoryConflictError(Exception):
    """A history operation that the key's state does not allow (e.g. restoring a key that is not deleted)."""


_KINDS = (RESOURCES, POLICIES, REFERENCE_VALUES)
_T = TypeVar("_T")


def _payload(kind: Kind, row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in kind.payload}


def _new_version(
    connection: Connection,
    kind: Kind,
    key: str,
    data: dict[str, Any],
    actor: str,
    action: str,
    now: float,
    restored_from: int | None = None,
) -> int:
    """Append `data` to a key's history and make it the current state; the new version number. Every versioned write
    (put, set, restore, rollback) goes through here, inside the caller's one audited transaction."""
    version = kind.append(connection, key, data, actor, action, now, restored_from=restored_from)
    _write_current(connection, kind, key, data, now, version)
    return version


def _write_current(
    connection: Connection, kind: Kind, key: str, data: dict[str, Any], now: float, version: int
) -> None:
    """Replace a key's current state by what a version records (and its number, where the current table keeps it)."""
    current = kind.current
    connection.execute(core_delete(current).where(current.c[kind.current_key] == key))
    if kind is REFERENCE_VALUES:
        rows = [
            {"name": key, "value": value, "expires_at": data["expires_at"], "updated_at": now}
            for value in json.loads(data["values_json"])
        ]
        if rows:  # an empty set of values is stored as no row (and a version recording [])
            connection.execute(core_insert(current), rows)
        return
    values = {kind.current_key: key, **data, "updated_at": now}
    if "version" in current.c:
        values["version"] = version
    connection.execute(core_insert(current).values(values))


def _missing(kind: Kind, key: str, version: int | None, kept: Sequence[VersionRow], retention: Retention) -> str:
    if not kept:
        return (
            f"{kind.what} {key} has no history (never stored, or deleted more than {retention.seconds:.0f} s ago "
            "and swept)"
        )
    numbers = [r.version for r in kept]
    return f"{kind.what} {key} has no version {version} (kept: {numbers[0]}..{numbers[-1]})"


class Store:
    def __init__(self, url: str, threads: int = DEFAULT_THREADS, retention: Retention | None = None) -> None:
        self.url = normalise_url(url)
        self.retention = retention or Retention()
        self.is_sqlite = self.url.startswith("sqlite")
        # One connection more than the service threads, for the audit chainer's thread (kbs._audit_chainer): with a
        # pool of exactly `threads`, its passes took an overflow connection, closed on return, so under load
        # PostgreSQL forked a new backend for about every chain pass and the pool's connections rotated.
        self.engine = make_engine(self.url, threads + 1)
        self._counter = TransactionCounter(self.engine)
        self._sql = _Statements(self.engine.dialect)
        # SQLite has one writer at a time: the threads of this process queue here rather than in SQLite's busy
        # handler, which sleeps up to 100 ms between tries. A database in memory is one shared connection.
        self._shared_connection = ":memory:" in self.url
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # Set after every commit that stored audit entries: a chain pass has work (kbs._audit_chainer waits on it).
        self.audit_committed = threading.Event()

    def transactions(self) -> TransactionCounts:
        """Transactions committed (read, write) and rolled back since this store was made."""
        return self._counter.counts()

    # -- transactions -----------------------------------------------------------------------------------------
    @contextmanager
    def _connection(self, write: bool, chain: bool = False) -> Iterator[Connection]:
        lock = self._write_lock if self._write_lock is not None and (write or self._shared_connection) else None
        try:
            with lock or nullcontext(), self.engine.connect() as connection:
                connection.execution_options(**{WRITE: write, CHAIN: chain})
                connection.info[_AUDITED] = False
                with connection.begin():
                    yield connection
                if connection.info[_AUDITED]:
                    self.audit_committed.set()
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc
        except (InternalError, ProgrammingError) as exc:
            # A trigger or a revoked privilege refusing a write (the audit's, say): the operation fails, closed.
            raise StorageError(f"database refused the operation: {exc.orig}") from exc

    @contextmanager
    def read(self) -> Iterator[Reads]:
        """One read transaction: a consistent view for the queries made in it."""
        with self._connection(write=False) as connection:
            yield Reads(connection, self._sql)

    @contextmanager
    def write(self) -> Iterator[Writes]:
        """One write transaction, committed when the block ends without an exception (and rolled back if not)."""
        with self._connection(write=True) as connection:
            writes = Writes(connection, self._sql)
            yield writes
            _insert_audit(connection, self._sql, writes.audit)

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[DbSession]:
        with self._connection(write) as connection, DbSession(bind=connection, expire_on_commit=False) as db:
            yield db
            db.flush()

    def _audited(self, db: DbSession, *records: AuditRecord) -> None:
        """The last step of an admin write's transaction: its changes flushed, then its audit entries stored."""
        db.flush()
        _insert_audit(db.connection(), self._sql, records)

    # -- schema -----------------------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest revision; concurrent replicas and workers take turns."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        # SQLite: the write transaction (BEGIN IMMEDIATE) is the turn; PostgreSQL: an advisory lock.
        with self._connection(write=True) as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc

    # -- sessions (outside the protocol's path: tests and operations) ------------------------------------------
    def get_session(self, session_id: str) -> SessionRecord | None:
        with self.read() as reads:
            return reads.session(session_id)

    def session_count(self) -> int:
        with self.read() as reads:
            return reads.session_count()

    def sweep_sessions(self, now: float) -> int:
        with self.write() as writes:
            return writes.sweep_sessions(now)

    # -- resources --------------------------------------------------------------------------------------------
    def put_resource(self, row: Resource, actor: str, audit: AuditRecord) -> int:
        """Store the current value of a resource and append it to its history, audited; the version number."""

        def change(connection: Connection) -> int:
            return _new_version(connection, RESOURCES, row.path, _payload(RESOURCES, row), actor, "put", row.updated_at)

        return self._versioned(RESOURCES, [row.path], row.updated_at, change, lambda _version: [audit])

    def get_resource(self, path: str) -> Resource | None:
        with self._tx(write=False) as db:
            return db.get(Resource, path)

    def delete_resource(self, path: str, actor: str, now: float, audit: AuditRecord) -> bool:
        """Delete the current value; its history stays, restorable for `retention.seconds`."""
        return self._delete_current(RESOURCES, path, actor, now, audit)

    def list_resources(self) -> Sequence[Resource]:
        with self._tx(write=False) as db:
            return db.exec(select(Resource).order_by(col(Resource.path))).all()

    # -- policies ---------------------------------------------------------------------------------------------
    def set_policy(self, row: Policy, actor: str, audit: AuditRecord) -> int:
        """Store a policy as the one in force and append it to its history, audited; the version number."""

        def change(connection: Connection) -> int:
            return _new_version(connection, POLICIES, row.id, _payload(POLICIES, row), actor, "set", row.updated_at)

        return self._versioned(POLICIES, [row.id], row.updated_at, change, lambda _version: [audit])

    def get_policy(self, policy_id: str) -> Policy | None:
        with self._tx(write=False) as db:
            return db.get(Policy, policy_id)

    def list_policies(self) -> Sequence[Policy]:
        with self._tx(write=False) as db:
            return db.exec(select(Policy).order_by(col(Policy.id))).all()

    def delete_policy(self, policy_id: str, actor: str, now: float, audit: AuditRecord) -> bool:
        return self._delete_current(POLICIES, policy_id, actor, now, audit)

    # -- reference values -------------------------------------------------------------------------------------
    def put_reference_values(
        self, name: str, values: Sequence[str], expires_at: float | None, now: float, actor: str, audit: AuditRecord
    ) -> int:
        """Replace the accepted values of `name`, audited; the version number."""
        return self.put_reference_value_sets({name: values}, expires_at, now, actor, [audit])[name]

    def put_reference_value_sets(
        self,
        values: Mapping[str, Sequence[str]],
        expires_at: float | None,
        now: float,
        actor: str,
        audit: Sequence[AuditRecord],
    ) -> dict[str, int]:
        """Replace the accepted values of several names in one audited transaction: all of them or none; name ->
        version."""

        def change(connection: Connection) -> dict[str, int]:
            versions = {}
            for name, accepted in values.items():
                data = {"values_json": json.dumps(list(dict.fromkeys(accepted))), "expires_at": expires_at}
                versions[name] = _new_version(connection, REFERENCE_VALUES, name, data, actor, "put", now)
            return versions

        return self._versioned(REFERENCE_VALUES, list(values), now, change, lambda _versions: audit)

    def reference_values(self, now: float | None = None) -> Sequence[ReferenceValue]:
        """All reference values; with `now`, only those not expired at that time."""
        with self._tx(write=False) as db:
            query = select(ReferenceValue).order_by(col(ReferenceValue.name), col(ReferenceValue.value))
            if now is not None:
                query = query.where((col(ReferenceValue.expires_at).is_(None)) | (col(ReferenceValue.expires_at) > now))
            return db.exec(query).all()

    def delete_reference_values(self, name: str, actor: str, now: float, audit: AuditRecord) -> bool:
        return self._delete_current(REFERENCE_VALUES, name, actor, now, audit)

    # -- history (kbs._history) -------------------------------------------------------------------------------
    def history(self, kind: Kind, key: str, now: float) -> list[VersionRow]:
        """The kept versions of a key, oldest first; none once a deleted key is past the retention."""
        with self.read() as reads:
            rows = kind.history(reads.connection, key)
        if rows and self._expired(rows[-1], now):
            return []
        return rows

    def version(self, kind: Kind, key: str, version: int, now: float) -> VersionRow:
        """One version of a key; NotInHistoryError naming the versions kept when it has no such version."""
        rows = self.history(kind, key, now)
        found = next((r for r in rows if r.version == version), None)
        if found is None:
            raise NotInHistoryError(_missing(kind, key, version, rows, self.retention))
        return found

    def restore(
        self,
        kind: Kind,
        key: str,
        version: int | None,
        actor: str,
        now: float,
        audit: Callable[[int], AuditRecord],
    ) -> int:
        """Make a kept version the current state again, as a new version (action `restore`, or `rollback` for a
        policy), audited by `audit(the new version)` in the same transaction; without `version`, the newest version
        of a deleted key. The new version's number."""
        action = "rollback" if kind is POLICIES else "restore"

        def change(connection: Connection) -> int:
            newest = kind.newest(connection, key)
            if newest is None or self._expired(newest, now):
                raise NotInHistoryError(_missing(kind, key, version, [], self.retention))
            wanted = version
            if wanted is None:
                if newest.deleted_at is None:
                    raise HistoryConflictError(f"{kind.what} {key} is not deleted: name the version to restore")
                wanted = newest.version
            found = kind.get(connection, key, wanted)
            if found is None:
                raise NotInHistoryError(_missing(kind, key, wanted, kind.history(connection, key), self.retention))
            return _new_version(connection, kind, key, dict(found.data), actor, action, now, restored_from=wanted)

        return self._versioned(kind, [key], now, change, lambda made: [audit(made)])

    def sweep_history(self, now: float) -> int:
        """Remove the history of keys deleted longer ago than the retention; the version rows removed."""
        cutoff = now - self.retention.seconds
        with self.write() as writes:
            return sum(kind.sweep_deleted(writes.connection, cutoff) for kind in _KINDS)

    def _expired(self, newest: VersionRow, now: float) -> bool:
        return newest.deleted_at is not None and newest.deleted_at < now - self.retention.seconds

    def _delete_current(self, kind: Kind, key: str, actor: str, now: float, audit: AuditRecord) -> bool:
        with self.write() as writes:
            self._lock_keys(writes.connection, kind, [key])
            current = kind.current
            removed = writes.connection.execute(core_delete(current).where(current.c[kind.current_key] == key))
            if not removed.rowcount:
                return False
            kind.mark_deleted(writes.connection, key, actor, now)
            writes.add_audit(audit)
            return True

    def _versioned(
        self,
        kind: Kind,
        keys: Sequence[str],
        now: float,
        change: Callable[[Connection], _T],
        audit: Callable[[_T], Sequence[AuditRecord]],
    ) -> _T:
        """Run a change that appends versions of `keys` in one write transaction: first the history of the kind's
        keys deleted longer ago than the retention goes (so a key put again after that starts again at version 1),
        then the change, then the versions of `keys` beyond `max_versions`; `audit(the change's result)` is
        chained last, in the same transaction."""
        with self.write() as writes:
            self._lock_keys(writes.connection, kind, keys)
            kind.sweep_deleted(writes.connection, now - self.retention.seconds)
            result = change(writes.connection)
            for key in keys:
                kind.trim(writes.connection, key, self.retention.max_versions)
            for record in audit(result):
                writes.add_audit(record)
            return result

    def _lock_keys(self, connection: Connection, kind: Kind, keys: Sequence[str]) -> None:
        """Writers of one key take turns until they commit, so each numbers its version after the last committed one.
        SQLite has one writer at a time already; PostgreSQL takes a transaction-scoped advisory lock per key (in a
        fixed order, so two writers of several keys cannot deadlock)."""
        if self.is_sqlite:
            return
        for key in sorted(set(keys)):
            digest = hashlib.sha256(f"{kind.what}\0{key}".encode()).digest()
            lock_id = int.from_bytes(digest[:8], "big", signed=True)
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    # -- token signing keys -----------------------------------------------------------------------------------
    def signing_keys(self) -> Sequence[SigningKey]:
        with self._tx(write=False) as db:
            return db.exec(select(SigningKey).order_by(col(SigningKey.created_at))).all()

    def add_signing_key(self, row: SigningKey, retire_others_at: float, audit: AuditRecord) -> None:
        with self._tx() as db:
            db.exec(update(SigningKey).where(col(SigningKey.retired_at).is_(None)).values(retired_at=retire_others_at))
            db.add(row)
            self._audited(db, audit)

    def add_first_signing_key(self, row: SigningKey) -> bool:
        """Insert the first key unless another replica got there first (then False)."""
        try:
            with self._tx() as db:
                if db.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None))).first() is not None:
                    return False
                db.add(row)
        except IntegrityError:
            return False
        return True

    # -- the keyring's data keys and the values they seal (kbs.sealing, kbs kek) -------------------------------------
    def data_keys(self) -> Sequence[DataKey]:
        with self._tx(write=False) as db:
            return db.exec(select(DataKey).order_by(col(DataKey.created_at), col(DataKey.kid))).all()

    def add_first_data_key(self, row: DataKey) -> bool:
        """Insert the first active key unless another replica got there first (then False)."""
        try:
            with self._tx() as db:
                if db.exec(select(DataKey).where(col(DataKey.state) == "active")).first() is not None:
                    return False
                db.add(row)
        except IntegrityError:
            return False
        return True

    def start_data_key(self, row: DataKey, replacing: Sequence[str], audit: AuditRecord) -> None:
        """`row` becomes the active key and the active ones (`replacing`) previous keys, in one audited transaction;
        ConflictError when the active keys are no longer those (another rotation started meanwhile)."""
        with self._tx() as db:
            moved = db.exec(
                update(DataKey)
                .where(col(DataKey.state) == "active", col(DataKey.kid).in_(replacing))
                .values(state="previous")
            )
            if moved.rowcount != len(replacing):
                raise ConflictError("another rotation made a new data key meanwhile: run kbs kek rotate again")
            db.add(row)
            self._audited(db, audit)

    def retire_data_keys(self, kids: Sequence[str], now: float, audit: AuditRecord) -> None:
        """The keys are gone: their wrapped form is deleted, their id kept so what they sealed can be named."""
        with self._tx() as db:
            db.exec(
                update(DataKey).where(col(DataKey.kid).in_(kids)).values(state="retired", wrapped=None, retired_at=now)
            )
            self._audited(db, audit)

    def sealed_batch(
        self, column: SealedColumn, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[tuple[Any, ...], bytes]]:
        """Up to `limit` (key, sealed value) of `column`, in key order after `after`: one short read."""
        keys = [column.table.c[name] for name in column.key]
        query = core_select(*keys, column.table.c[column.column]).order_by(*keys).limit(limit)
        if after is not None:
            query = query.where(tuple_(*keys) > tuple_(*after))
        with self.read() as reads:
            rows = reads.connection.execute(query).all()
        return [(tuple(row[:-1]), bytes(row[-1])) for row in rows]

    def replace_sealed(self, column: SealedColumn, changes: Sequence[tuple[tuple[Any, ...], bytes, bytes]]) -> int:
        """(key, old, new): each value still `old` becomes `new`, in one short write; a value changed meanwhile (a
        concurrent put) is left as it is. The number replaced."""
        table = column.table
        where = and_(
            *(table.c[name] == bindparam(f"k_{name}") for name in column.key),
            table.c[column.column] == bindparam("old"),
        )
        statement = core_update(table).where(where).values({column.column: bindparam("new")})
        replaced = 0
        with self.write() as writes:
            for key, old, new in changes:
                values = {f"k_{name}": value for name, value in zip(column.key, key, strict=True)}
                replaced += writes.connection.execute(statement, {**values, "old": old, "new": new}).rowcount
        return replaced

    # -- audit ------------------------------------------------------------------------------------------------
    def audit(self, record: AuditRecord, decision: DecisionRecord | None = None) -> None:
        """Audit an event that changes nothing else (a refused call, a secret read), and the decision it records if
        any, in a write of its own."""
        with self.write() as writes:
            writes.add_audit(record)
            if decision is not None:
                writes.add_decision(decision)

    def chain_audit(self, wait_seconds: float = 0.0) -> ChainStep:
        """Append the committed, unchained audit entries to the chain, a batch a transaction, until none is left.
        When another chainer holds the head (another replica's pass), give up at once, or after `wait_seconds` of
        retrying (`kbs admin audit verify` waits, so that it sees every entry committed before it was asked). What
        was done: the entries chained, and whether it stopped at a held head."""
        deadline = time.monotonic() + wait_seconds
        chained = 0
        while True:
            try:
                with self._connection(write=True, chain=True) as connection:
                    step = chain_batch(connection, _CHAIN_BATCH)
            except ChainHeadError as exc:
                raise StorageError(f"{exc}: `kbs admin audit verify` names the break") from exc
            chained += step.chained
            if step.held and time.monotonic() < deadline:
                time.sleep(_CHAIN_RETRY_SECONDS)
            elif step.held or step.chained < _CHAIN_BATCH:
                return ChainStep(chained, step.held)

    def unchained_audit(self, limit: int) -> Sequence[tuple[int, float]]:
        """(database id, at) of up to `limit` entries not chained yet, oldest id first."""
        with self._connection(write=False) as connection:
            query = core_select(_AUDIT.c.id, _AUDIT.c.at).where(_AUDIT.c.seq.is_(None)).order_by(_AUDIT.c.id)
            return [(int(row[0]), float(row[1])) for row in connection.execute(query.limit(limit))]

    def audit_log(self, limit: int = 100) -> Sequence[Entry]:
        """The newest chained entries first."""
        with self._tx(write=False) as db:
            query = select(Audit).where(col(Audit.seq).is_not(None)).order_by(col(Audit.seq).desc()).limit(limit)
            return [_chained(row) for row in db.exec(query).all()]

    def audit_entries(self, after_seq: int, since: float | None, limit: int) -> Sequence[Entry]:
        """Up to `limit` entries after entry `after_seq`, in chain order; with `since`, only those at or after it."""
        with self._tx(write=False) as db:
            query = select(Audit).where(col(Audit.seq) > after_seq)
            if since is not None:
                query = query.where(col(Audit.at) >= since)
            return [_chained(row) for row in db.exec(query.order_by(col(Audit.seq)).limit(limit)).all()]

    def audit_chain(self) -> tuple[tuple[int, str] | None, Iterator[Entry]]:
        """The chain's head (None when its row is gone) and every chained entry in `seq` order, read in pages."""
        with self._tx(write=False) as db:
            head_row = db.get(AuditHead, _HEAD_ID)
            head = None if head_row is None else (head_row.seq, head_row.digest)
        return head, self._audit_pages()

    def _audit_pages(self) -> Iterator[Entry]:
        after = 0
        while True:
            entries = self.audit_entries(after, None, _AUDIT_PAGE)
            yield from entries
            if len(entries) < _AUDIT_PAGE:
                return
            after = entries[-1].seq

    # -- decisions (recorded on the protocol's path by `Writes.add_decision`) -------------------------------------
    def decisions(self, where: DecisionFilter) -> Sequence[Decision]:
        """The newest decisions first that match `where`."""
        with self._tx(write=False) as db:
            query = select(Decision).order_by(col(Decision.id).desc()).limit(where.limit)
            if where.kind is not None:
                query = query.where(col(Decision.kind) == where.kind)
            if where.denied:
                query = query.where(col(Decision.denied).is_(True))
            if where.since is not None:
                query = query.where(col(Decision.at) >= where.since)
            if where.path is not None:
                query = query.where(col(Decision.path) == where.path)
            return db.exec(query).all()

    def policy_version_at(self, policy_id: str, sha256: str, at: float) -> tuple[int, str] | None:
        """(version, source) of the stored policy `policy_id` in force at `at`, when its digest is `sha256`
        (None for a shipped policy, or one whose history was swept)."""
        with self._tx(write=False) as db:
            row = db.exec(
                select(PolicyVersion)
                .where(col(PolicyVersion.policy_id) == policy_id, col(PolicyVersion.created_at) <= at)
                .order_by(col(PolicyVersion.version).desc())
                .limit(1)
            ).first()
        return (row.version, row.source) if row is not None and row.sha256 == sha256 else None

    def decision(self, decision_id: int) -> Decision | None:
        with self._tx(write=False) as db:
            return db.get(Decision, decision_id)

    def sweep_decisions(self, before: float, keep: int) -> int:
        """Delete the decisions made before `before` and those beyond the newest `keep`."""
        with self._tx() as db:
            swept = db.exec(delete(Decision).where(col(Decision.at) < before)).rowcount
            cutoff = db.exec(select(Decision.id).order_by(col(Decision.id).desc()).offset(keep).limit(1)).first()
            if cutoff is not None:
                swept += db.exec(delete(Decision).where(col(Decision.id) <= cutoff)).rowcount
            return int(swept)

    # -- TPM AK enrolment -------------------------------------------------------------------------------------
    def add_tpm_enrollment(self, row: TpmEnrollment) -> None:
        with self._tx() as db:
            db.exec(delete(TpmEnrollment).where(col(TpmEnrollment.expires_at) <= row.created_at))
            db.add(row)

    def tpm_enrollment(self, enrollment_id: str) -> TpmEnrollment | None:
        """The challenge `enrollment_id` as stored (expired or not), read without taking it: the answer is checked
        with no transaction open, then settled by `answer_tpm_enrollment`."""
        with self._tx(write=False) as db:
            return db.get(TpmEnrollment, enrollment_id)

    def answer_tpm_enrollment(
        self, enrollment_id: str, ak: TpmAk | None, audit: AuditRecord, already_answered: AuditRecord
    ) -> bool:
        """Settle an answer to a challenge in one write transaction: the challenge is consumed if it is still there
        (compare-and-delete: another answer may have taken it since it was read), and then `ak` is enrolled (None: the
        answer was refused) with `audit`; if it was gone, nothing but `already_answered` is stored. True when this
        answer consumed the challenge. A failed write stores nothing, so the challenge stays open for a retry."""
        with self._tx() as db:
            taken = db.exec(delete(TpmEnrollment).where(col(TpmEnrollment.id) == enrollment_id)).rowcount == 1
            if taken and ak is not None:
                # An upsert, not a merge (SELECT, then INSERT): an agent that restarted its exchange on another
                # replica may enrol the same AK through a second challenge at the same moment, and the two INSERTs
                # would meet on the key (a 500). Enrolling an AK again only renews its row.
                insert = (sqlite_insert if self.is_sqlite else postgresql_insert)(TpmAk)
                values = ak.model_dump()
                db.exec(
                    insert.values(values).on_conflict_do_update(
                        index_elements=[col(TpmAk.ak_sha256)],
                        set_={k: v for k, v in values.items() if k != "ak_sha256"},
                    )
                )
            self._audited(db, audit if taken else already_answered)
            return taken

    def tpm_ak_enrolled(self, ak_sha256: str) -> bool:
        with self._tx(write=False) as db:
            return db.get(TpmAk, ak_sha256) is not None
