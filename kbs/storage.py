"""The broker's storage: one SQLModel database (SQLite by default, PostgreSQL in production).

Every operation is a short transaction; the state machine of a session (challenged -> consumed -> attested) moves
by conditional UPDATEs, so two replicas can never both accept one nonce.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session as DbSession
from sqlmodel import col, create_engine, delete, select, update

from .tables import Audit, Policy, ReferenceValue, Resource, Session, SigningKey, TpmAk, TpmEnrollment

__all__ = ["ConflictError", "StorageError", "Store", "normalise_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_467_420  # PostgreSQL advisory lock id guarding schema upgrades between replicas
_sqlite_upgrade_lock = threading.Lock()


class StorageError(Exception):
    """The database cannot be reached or refused an operation (the API answers 503)."""


class ConflictError(Exception):
    """A state transition that another request already made (e.g. a nonce already consumed)."""


def normalise_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still survives a crash of the process; only an OS crash may lose the newest commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            memory = ":memory:" in self.url
            self.engine: Engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 10},
                poolclass=StaticPool if memory else None,
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(
                self.url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 5}
            )

    # -- schema -----------------------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest revision; concurrent replicas take turns."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if self.is_sqlite:
                    with _sqlite_upgrade_lock:
                        config.attributes["connection"] = connection
                        command.upgrade(config, "head")
                else:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc

    def ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc

    @contextmanager
    def _tx(self) -> Iterator[DbSession]:
        try:
            with DbSession(self.engine, expire_on_commit=False) as db, db.begin():
                yield db
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc

    # -- sessions ---------------------------------------------------------------------------------------------
    def create_session(self, session: Session) -> None:
        with self._tx() as db:
            db.add(session)

    def consume_session(self, session_id: str, nonce: str, now: float) -> Session:
        """Take the session's nonce for one /attest. ConflictError if already taken, expired or unknown."""
        with self._tx() as db:
            result = db.exec(
                update(Session)
                .where(
                    col(Session.id) == session_id,
                    col(Session.nonce) == nonce,
                    col(Session.state) == "challenged",
                    col(Session.expires_at) > now,
                )
                .values(state="consumed")
            )
            if result.rowcount != 1:
                raise ConflictError("no open challenge for this session and nonce")
            row = db.get(Session, session_id)
            assert row is not None
            return row

    def get_session(self, session_id: str) -> Session | None:
        with self._tx() as db:
            return db.get(Session, session_id)

    def complete_session(self, session_id: str, token: str) -> None:
        with self._tx() as db:
            db.exec(
                update(Session)
                .where(col(Session.id) == session_id, col(Session.state) == "consumed")
                .values(state="attested", token=token)
            )

    def sweep_sessions(self, now: float) -> int:
        with self._tx() as db:
            result = db.exec(delete(Session).where(col(Session.expires_at) <= now))
            return int(result.rowcount)

    # -- resources --------------------------------------------------------------------------------------------
    def put_resource(self, row: Resource) -> None:
        with self._tx() as db:
            db.merge(row)

    def get_resource(self, path: str) -> Resource | None:
        with self._tx() as db:
            return db.get(Resource, path)

    def delete_resource(self, path: str) -> bool:
        with self._tx() as db:
            result = db.exec(delete(Resource).where(col(Resource.path) == path))
            return bool(result.rowcount)

    def list_resources(self) -> Sequence[Resource]:
        with self._tx() as db:
            return db.exec(select(Resource).order_by(col(Resource.path))).all()

    # -- policies ---------------------------------------------------------------------------------------------
    def set_policy(self, row: Policy) -> None:
        with self._tx() as db:
            db.merge(row)

    def get_policy(self, policy_id: str) -> Policy | None:
        with self._tx() as db:
            return db.get(Policy, policy_id)

    def first_policy(self, policy_ids: Sequence[str]) -> Policy | None:
        """The first of `policy_ids` (in that order of preference) that exists, in one query."""
        with self._tx() as db:
            rows = {r.id: r for r in db.exec(select(Policy).where(col(Policy.id).in_(policy_ids))).all()}
        return next((rows[i] for i in policy_ids if i in rows), None)

    def list_policies(self) -> Sequence[Policy]:
        with self._tx() as db:
            return db.exec(select(Policy).order_by(col(Policy.id))).all()

    def delete_policy(self, policy_id: str) -> bool:
        with self._tx() as db:
            result = db.exec(delete(Policy).where(col(Policy.id) == policy_id))
            return bool(result.rowcount)

    # -- reference values -------------------------------------------------------------------------------------
    def put_reference_values(self, name: str, values: Sequence[str], expires_at: float | None, now: float) -> None:
        """Replace the accepted values of `name`."""
        with self._tx() as db:
            db.exec(delete(ReferenceValue).where(col(ReferenceValue.name) == name))
            for value in dict.fromkeys(values):
                db.add(ReferenceValue(name=name, value=value, expires_at=expires_at, updated_at=now))

    def put_reference_value_sets(
        self, values: Mapping[str, Sequence[str]], expires_at: float | None, now: float
    ) -> None:
        """Replace the accepted values of several names in one transaction: all of them or none."""
        with self._tx() as db:
            for name, accepted in values.items():
                db.exec(delete(ReferenceValue).where(col(ReferenceValue.name) == name))
                for value in dict.fromkeys(accepted):
                    db.add(ReferenceValue(name=name, value=value, expires_at=expires_at, updated_at=now))

    def reference_values(self, now: float | None = None) -> Sequence[ReferenceValue]:
        """All reference values; with `now`, only those not expired at that time."""
        with self._tx() as db:
            query = select(ReferenceValue).order_by(col(ReferenceValue.name), col(ReferenceValue.value))
            if now is not None:
                query = query.where((col(ReferenceValue.expires_at).is_(None)) | (col(ReferenceValue.expires_at) > now))
            return db.exec(query).all()

    def delete_reference_values(self, name: str) -> bool:
        with self._tx() as db:
            result = db.exec(delete(ReferenceValue).where(col(ReferenceValue.name) == name))
            return bool(result.rowcount)

    # -- token signing keys -----------------------------------------------------------------------------------
    def signing_keys(self) -> Sequence[SigningKey]:
        with self._tx() as db:
            return db.exec(select(SigningKey).order_by(col(SigningKey.created_at))).all()

    def add_signing_key(self, row: SigningKey, retire_others_at: float | None = None) -> None:
        with self._tx() as db:
            if retire_others_at is not None:
                db.exec(
                    update(SigningKey).where(col(SigningKey.retired_at).is_(None)).values(retired_at=retire_others_at)
                )
            db.add(row)

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

    # -- audit ------------------------------------------------------------------------------------------------
    def audit(self, row: Audit) -> None:
        with self._tx() as db:
            db.add(row)

    def audit_log(self, limit: int = 100) -> Sequence[Audit]:
        with self._tx() as db:
            return db.exec(select(Audit).order_by(col(Audit.id).desc()).limit(limit)).all()

    # -- TPM AK enrolment -------------------------------------------------------------------------------------
    def add_tpm_enrollment(self, row: TpmEnrollment) -> None:
        with self._tx() as db:
            db.exec(delete(TpmEnrollment).where(col(TpmEnrollment.expires_at) <= row.created_at))
            db.add(row)

    def take_tpm_enrollment(self, enrollment_id: str, now: float) -> TpmEnrollment | None:
        """The open challenge, removed in the same transaction: each is answered at most once."""
        with self._tx() as db:
            row = db.get(TpmEnrollment, enrollment_id)
            if row is None:
                return None
            db.delete(row)
            return row if row.expires_at > now else None

    def enroll_tpm_ak(self, row: TpmAk) -> None:
        with self._tx() as db:
            db.merge(row)

    def tpm_ak_enrolled(self, ak_sha256: str) -> bool:
        with self._tx() as db:
            return db.get(TpmAk, ak_sha256) is not None
