"""POST /tpm/activate settles an answer in one write transaction (kbs.services.tpm): the challenge is read, the answer
checked with no transaction open, then one write consumes the challenge (compare-and-delete) and stores the AK, or
the refusal, with its audit entry. On SQLite and PostgreSQL: one write per activation, accepted or refused; two
answers racing for one challenge enrol once; a write the database refuses consumes nothing, so the same answer
succeeds once the database accepts writes again. The TPM side (TPM2_MakeCredential, TPM2_ActivateCredential) is
tested with a swtpm in test_tpm_enroll.py: here a challenge is stored as /tpm/enroll stores it, for a known secret."""

from __future__ import annotations

import base64
import hashlib
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from kbs.api.schemas import TpmActivateRequest, TpmEnrolled
from kbs.errors import KbsError
from kbs.services.audit import AuditLog
from kbs.services.tpm import CHALLENGE_TTL_SECONDS, TpmEnrollmentService
from kbs.storage import Store, normalise_url
from kbs.tables import TpmEnrollment
from tests.integration._helpers import assert_error
from tests.integration._kbs_server import KbsServer
from tests.integration.conftest import new_database_url

SECRET = b"\x5a" * 32
AK_SHA256 = "a1" * 32


def _challenge(store: Store, enrollment_id: str, now: float) -> None:
    """A challenge for `SECRET`, stored as /tpm/enroll stores one."""
    store.add_tpm_enrollment(
        TpmEnrollment(
            id=enrollment_id,
            ak_sha256=AK_SHA256,
            ek_certificate_sha256="e0" * 32,
            secret_sha256=hashlib.sha256(SECRET).hexdigest(),
            created_at=now,
            expires_at=now + CHALLENGE_TTL_SECONDS,
        )
    )


def _answer(enrollment_id: str, secret: bytes = SECRET) -> TpmActivateRequest:
    return TpmActivateRequest(id=enrollment_id, secret=base64.b64encode(secret).decode())


def _audited(engine: Engine) -> list[tuple[str, str, str | None]]:
    """The TPM enrolment entries stored (chained or not yet), oldest first: (target, outcome, reason)."""
    with engine.connect() as connection:
        query = "SELECT target, outcome, reason FROM kbs_audit WHERE action = 'tpm.enroll' ORDER BY id"
        return [(r[0], r[1], r[2]) for r in connection.execute(text(query))]


def _count(engine: Engine, query: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(query)).scalar_one())


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    made = Store(database_url, threads=4)
    made.migrate()
    try:
        yield made
    finally:
        made.engine.dispose()


def test_an_activation_is_one_write_accepted_or_refused(store: Store) -> None:
    tpm = TpmEnrollmentService(store, (), AuditLog(store))
    now = time.time()
    _challenge(store, "accepted", now)
    _challenge(store, "refused", now)

    before = store.transactions()
    assert tpm.activate(_answer("accepted"), now) == TpmEnrolled(ak_sha256=AK_SHA256)
    spent = store.transactions() - before
    assert (spent.read, spent.write, spent.rolled_back) == (1, 1, 0)
    assert store.tpm_ak_enrolled(AK_SHA256)

    before = store.transactions()
    with pytest.raises(KbsError, match="secret does not match") as refused:
        tpm.activate(_answer("refused", b"\0" * 32), now)
    assert refused.value.variant == "AttestationFailed"
    spent = store.transactions() - before
    assert (spent.read, spent.write, spent.rolled_back) == (1, 1, 0)
    # Single-use whatever the outcome: the refused answer consumed the challenge, the right one comes too late.
    with pytest.raises(KbsError, match="already answered"):
        tpm.activate(_answer("refused"), now)

    assert _audited(store.engine) == [
        (f"ak:{AK_SHA256}", "ok", None),
        ("enrollment:refused", "refused", "AttestationFailed"),
        ("enrollment:refused", "refused", "UnAuthorized"),
    ]


def test_an_expired_challenge_is_consumed_and_refused(store: Store) -> None:
    tpm = TpmEnrollmentService(store, (), AuditLog(store))
    now = time.time()
    _challenge(store, "late", now - CHALLENGE_TTL_SECONDS - 1)
    before = store.transactions()
    with pytest.raises(KbsError, match="expired or already answered"):
        tpm.activate(_answer("late"), now)
    assert (store.transactions() - before).write == 1
    assert store.tpm_enrollment("late") is None
    assert not store.tpm_ak_enrolled(AK_SHA256)


def test_concurrent_answers_to_one_challenge_enrol_once(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Both answers read the challenge and pass the check; a transaction holding the challenge's row lock makes both
    wait at the compare-and-delete, then lets them go: one enrols, the other finds the challenge gone (401)."""
    store = Store(new_database_url(request, "postgres", tmp_path), threads=4)
    try:
        store.migrate()
        tpm = TpmEnrollmentService(store, (), AuditLog(store))
        now = time.time()
        _challenge(store, "raced", now)
        holder = store.engine.connect()
        try:
            holder.execute(text("SELECT id FROM kbs_tpm_enrollment WHERE id = 'raced' FOR UPDATE"))
            with ThreadPoolExecutor(2) as pool:
                answers = [pool.submit(tpm.activate, _answer("raced"), now) for _ in range(2)]
                waiting = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                deadline = time.monotonic() + 30
                while _count(store.engine, waiting) < 2:
                    assert time.monotonic() < deadline, "the two answers never met at the challenge's row"
                    time.sleep(0.02)
                holder.rollback()
                outcomes = [a.exception() or a.result() for a in answers]
        finally:
            holder.close()
        assert sorted(type(o).__name__ for o in outcomes) == ["KbsError", "TpmEnrolled"]
        (lost,) = [o for o in outcomes if isinstance(o, KbsError)]
        assert (lost.status, lost.variant) == (401, "UnAuthorized")
        assert "already answered" in lost.detail
        assert _count(store.engine, "SELECT count(*) FROM kbs_tpm_ak") == 1
        assert sorted(_audited(store.engine), key=lambda e: e[1]) == [
            (f"ak:{AK_SHA256}", "ok", None),
            ("enrollment:raced", "refused", "UnAuthorized"),
        ]
    finally:
        store.engine.dispose()


def test_one_ak_enrolled_through_two_challenges_at_once(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Two challenges for the same AK (an agent that restarted its exchange on another replica) answered at the same
    time: the second answer's AK row meets the first's uncommitted one. Here a transaction holds that row until the
    answer waits on it, then commits: the answer still enrols (200, the AK's row updated), where an INSERT would
    fail on the duplicate key (a 500)."""
    store = Store(new_database_url(request, "postgres", tmp_path), threads=4)
    try:
        store.migrate()
        tpm = TpmEnrollmentService(store, (), AuditLog(store))
        now = time.time()
        _challenge(store, "second", now)
        holder = store.engine.connect()
        try:
            holder.execute(
                text("INSERT INTO kbs_tpm_ak VALUES (:ak, :ek, :at)"), {"ak": AK_SHA256, "ek": "e0" * 32, "at": now}
            )
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(tpm.activate, _answer("second"), now + 1)
                waiting = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                deadline = time.monotonic() + 30
                while _count(store.engine, waiting) < 1:
                    assert time.monotonic() < deadline, "the answer never waited on the AK's row"
                    time.sleep(0.02)
                holder.commit()
                enrolled = answer.result()
        finally:
            holder.close()
        assert isinstance(enrolled, TpmEnrolled)
        assert _count(store.engine, "SELECT count(*) FROM kbs_tpm_ak") == 1
        assert _count(store.engine, f"SELECT count(*) FROM kbs_tpm_ak WHERE enrolled_at = {now + 1}") == 1
        assert _count(store.engine, "SELECT count(*) FROM kbs_tpm_enrollment") == 0
    finally:
        store.engine.dispose()


def test_a_refused_write_consumes_nothing_and_the_answer_is_retried(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """PostgreSQL refuses the AK's INSERT (a trigger, as a revoked privilege or a full disk would): 503, the
    challenge is still there and nothing is audited; once the write is accepted, the same answer enrols the AK. A
    retry is right: nothing of the failed answer was kept, and the challenge still holds only a digest of a secret
    that only the TPM could recover."""
    url = new_database_url(request, "postgres", tmp_path)
    with KbsServer(tmp_path / "kbs", database_url=url) as server:
        engine = create_engine(normalise_url(tomllib.loads(server.config_file.read_text())["database"]["url"]))
        store = Store(url, threads=1)
        try:
            _challenge(store, "retried", time.time())
            audited = _count(engine, "SELECT count(*) FROM kbs_audit")
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "CREATE FUNCTION refuse_ak() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'AK refused'; END $$"
                    )
                )
                connection.execute(
                    text("CREATE TRIGGER refuse BEFORE INSERT ON kbs_tpm_ak FOR EACH ROW EXECUTE FUNCTION refuse_ak()")
                )
            answer = {"id": "retried", "secret": base64.b64encode(SECRET).decode()}
            activate = server.url + "/kbs/v0/tpm/activate"
            assert_error(httpx.post(activate, json=answer, timeout=10), 503, "ServiceUnavailable")
            assert store.tpm_enrollment("retried") is not None
            assert _count(engine, "SELECT count(*) FROM kbs_tpm_ak") == 0
            assert _count(engine, "SELECT count(*) FROM kbs_audit") == audited

            with engine.begin() as connection:
                connection.execute(text("DROP TRIGGER refuse ON kbs_tpm_ak"))
            retried = httpx.post(activate, json=answer, timeout=10)
            assert retried.status_code == 200, retried.text
            assert retried.json() == {"ak_sha256": AK_SHA256}
            assert store.tpm_enrollment("retried") is None
            assert store.tpm_ak_enrolled(AK_SHA256)
        finally:
            store.engine.dispose()
            engine.dispose()
