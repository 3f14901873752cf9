"""The broker's database engine, tuned per backend, and the count of its transactions.

- SQLite: WAL journal (readers never wait for the writer), `synchronous=NORMAL`, a busy timeout, and transactions
  begun by the broker itself: `BEGIN` for reads, `BEGIN IMMEDIATE` for writes, so a write takes the database's
  write lock up front instead of failing to upgrade a read lock half way (SQLITE_BUSY is not retried then).
- PostgreSQL: a connection pool sized for the worker's threads (each thread holds at most one connection, only for
  the length of one transaction), statements prepared on the server from their second use (psycopg's
  `prepare_threshold`), a ping on checkout so a restarted database costs no failed request.

`TransactionCounter` listens to the engine's events and counts committed transactions, read and write (a write is
one that ran an INSERT, UPDATE or DELETE, through SQLAlchemy or a `Prepared` statement): the benchmark prints them
and a test asserts the handshake's budget. The audit chainer's transactions (kbs._audit_sequencer) are counted
apart, as `chain`: they serve many handshakes each, off the handshake's path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["CHAIN", "WRITE", "Prepared", "Rows", "TransactionCounter", "TransactionCounts", "make_engine"]

# Execution option of a connection whose transaction will write (SQLite begins it IMMEDIATE).
WRITE = "veritee_write"
# Execution option of a connection whose transaction is a chain step of the audit log (counted as `chain`).
CHAIN = "veritee_chain"
_DML = ("INSERT", "UPDATE", "DELETE")
_SQLITE_BUSY_TIMEOUT_MS = 10_000
# Connections beyond the worker's threads, for the framework's own thread pool (admin and operations routes).
_POOL_OVERFLOW = 8


def make_engine(url: str, threads: int) -> Engine:
    """An engine for `url` (already normalised) whose pool serves `threads` threads at once."""
    if url.startswith("sqlite"):
        memory = ":memory:" in url or url.rstrip("/") == "sqlite:"
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=StaticPool if memory else QueuePool,
            **({} if memory else {"pool_size": threads, "max_overflow": _POOL_OVERFLOW}),
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=threads,
        max_overflow=_POOL_OVERFLOW,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5, "prepare_threshold": 1},
    )


def _sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # The driver's own transaction handling begins lazily and DEFERRED; the broker begins them (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still survives a crash of the process; only an OS crash may lose the newest commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(WRITE, False)
    # Straight to the driver: BEGIN needs none of the statement machinery (and is no INSERT, UPDATE or DELETE).
    connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]


class Prepared:
    """A statement compiled once to the SQL text of one dialect, executed straight on the driver's cursor inside the
    connection's transaction: SQLAlchemy's execution path (events, execution context, result metadata) costs about
    70 us a statement, ten times the driver's own work, and the handshake runs nine. The driver prepares the text
    (SQLite's statement cache, PostgreSQL's server-side prepared statements).

    What SQLAlchemy would otherwise do is kept: a DML statement marks its transaction a write for
    `TransactionCounter`; a driver error is raised as SQLAlchemy's (OperationalError, IntegrityError...) with the
    parameters hidden, and a lost connection is invalidated so the pool does not hand it out again. The protocol's
    statements bind and return only what both drivers convert themselves (str, float, int, bytes, None)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self._defaults = dict(compiled.params)
        self._positions = compiled.positiontup
        self._writes = self.sql.lstrip()[:6].upper() in _DML

    def __call__(self, connection: Connection, values: Mapping[str, object]) -> Rows:
        params = {**self._defaults, **values}
        parameters: Sequence[object] | Mapping[str, object] = params
        if self._positions is not None:
            parameters = tuple(params[name] for name in self._positions)
        if self._writes:
            connection.info[WRITE] = True
        driver = connection.connection.dbapi_connection
        assert driver is not None  # a connection inside its transaction is never detached
        cursor = driver.cursor()
        try:
            cursor.execute(self.sql, parameters)
            return Rows(cursor.fetchall() if cursor.description is not None else [], cursor.rowcount)
        except connection.dialect.loaded_dbapi.Error as exc:
            lost = connection.dialect.is_disconnect(exc, driver, cursor)
            if lost:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                self.sql,
                parameters,
                exc,
                connection.dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=connection.dialect,
            ) from exc
        finally:
            cursor.close()


class Rows:
    """The rows of a `Prepared` execution (plain tuples), and how many rows a DML statement changed."""

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise ValueError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]


@dataclass(frozen=True)
class TransactionCounts:
    read: int = 0
    write: int = 0
    rolled_back: int = 0
    chain: int = 0

    def __sub__(self, other: TransactionCounts) -> TransactionCounts:
        return TransactionCounts(
            self.read - other.read,
            self.write - other.write,
            self.rolled_back - other.rolled_back,
            self.chain - other.chain,
        )


class TransactionCounter:
    """Committed read and write transactions, and rolled back ones, of one engine since it was made."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._read = self._write = self._rolled_back = self._chain = 0
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "before_cursor_execute", self._execute)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    @staticmethod
    def _begin(connection: Connection) -> None:
        connection.info[WRITE] = False

    @staticmethod
    def _execute(connection: Connection, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip()[:6].upper() in _DML:
            connection.info[WRITE] = True

    def _commit(self, connection: Connection) -> None:
        with self._lock:
            if connection.get_execution_options().get(CHAIN):
                self._chain += 1
            elif connection.info.get(WRITE):
                self._write += 1
            else:
                self._read += 1

    def _rollback(self, _connection: Connection) -> None:
        with self._lock:
            self._rolled_back += 1

    def counts(self) -> TransactionCounts:
        with self._lock:
            return TransactionCounts(self._read, self._write, self._rolled_back, self._chain)
