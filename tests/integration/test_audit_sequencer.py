"""Audit entries chained after their commit (kbs._audit_sequencer, kbs._audit_chainer) against real `kbs serve`
replicas sharing one PostgreSQL database: the replicas' chainers keep one linear chain under concurrent admin writes
and handshakes, within the grace and with far fewer chain transactions than handshakes; entries a killed replica
committed are chained by the other; and an entry left unchained past the grace fails `kbs admin audit verify`."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, Engine, text

from kbs._audit_sequencer import CHAIN_GRACE_SECONDS
from kbs.admin_client import AdminClient
from tests.integration._audit import database, export, provision, verify
from tests.integration._guest import Guest
from tests.integration._kbs_server import KbsServer
from tests.integration.conftest import new_database_url

_CHAIN_COUNTER = re.compile(r'^kbs_db_transactions_total\{kind="chain"\} (\d+)$', re.MULTILINE)


def unchained(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM kbs_audit WHERE seq IS NULL")).scalar_one())


def chained_within_the_grace(engine: Engine) -> bool:
    """Whether the replicas' own chainers (not a verify's pass) chain every committed entry within the grace."""
    deadline = time.monotonic() + CHAIN_GRACE_SECONDS
    while unchained(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    return unchained(engine) == 0


def chain_transactions(server: KbsServer) -> int:
    found = _CHAIN_COUNTER.search(httpx.get(server.url + "/metrics").text)
    assert found is not None
    return int(found.group(1))


@contextmanager
def head_held(engine: Engine) -> Iterator[Connection]:
    """The chain's head locked as a stuck chain pass would hold it: every replica's pass finds it held."""
    with engine.connect() as connection, connection.begin():
        connection.execute(text("SELECT seq FROM kbs_audit_head WHERE id = 1 FOR UPDATE"))
        yield connection


@pytest.fixture
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[KbsServer, KbsServer]]:
    url = new_database_url(request, "postgres", tmp_path)
    with KbsServer(tmp_path / "a", database_url=url) as first:
        provision(first)
        # The second replica shares the database and trusts the first's admin key and token.
        with KbsServer(tmp_path / "a", database_url=url, init=False) as second:
            yield first, second


def test_two_replicas_and_concurrent_writers_keep_one_linear_chain(replicas: tuple[KbsServer, KbsServer]) -> None:
    """Admin writes and handshakes on both replicas at once: one linear chain, every entry chained within the grace
    by the replicas' chainers, in batches."""
    first, second = replicas
    engine = database(first)
    chained_before = chain_transactions(first) + chain_transactions(second)

    def put(n: int) -> None:
        with AdminClient(replicas[n % 2].url, first.token) as client:
            client.put_resource(f"load/key/{n}", b"v")

    def handshake(n: int) -> None:
        guest = Guest(replicas[n % 2].url)
        guest.handshake()
        assert guest.resource("default/key/1").status_code == 200

    try:
        with ThreadPoolExecutor(16) as pool:
            done = [pool.submit(put, n) for n in range(60)] + [pool.submit(handshake, n) for n in range(60)]
            for future in done:
                future.result()
        assert chained_within_the_grace(engine)
    finally:
        engine.dispose()
    chain_passes = chain_transactions(first) + chain_transactions(second) - chained_before
    code, result, message = verify(second)
    assert code == 0, message
    assert result["unchained"] == 0
    entries = export(first)
    assert result["entries"] == len(entries) == 3 + 60 + 60 * 2
    assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
    assert all(e["prev_digest"] == p["digest"] for p, e in itertools.pairwise(entries))
    # Batched: a chain transaction serves several audited writes (and the idle passes, one a second, are few).
    assert chain_passes < 60 + 60 * 2


def test_entries_a_killed_replica_committed_are_chained_by_the_other(replicas: tuple[KbsServer, KbsServer]) -> None:
    """The first replica commits puts while no chain pass can run (the head held), then is killed (-9) before its
    chainer ran: the second replica chains its entries once the head is free, and stored == audited."""
    first, second = replicas
    engine = database(first)
    paths = [f"killed/key/{n}" for n in range(20)]
    try:
        with head_held(engine):
            for path in paths:
                first.admin.put_resource(path, b"v")
            assert unchained(engine) == len(paths)
            os.kill(first.pid, signal.SIGKILL)
        assert chained_within_the_grace(engine)
    finally:
        engine.dispose()
    code, _, message = verify(second)
    assert code == 0, message
    stored = {r["path"] for r in second.admin.list_resources() if r["path"].startswith("killed/")}
    audited = {e["target"] for e in export(second) if e["action"] == "resource.put"}
    assert stored == set(paths) <= audited


def test_an_entry_left_unchained_past_the_grace_fails_verify(replicas: tuple[KbsServer, KbsServer]) -> None:
    first, second = replicas
    engine = database(first)
    try:
        with head_held(engine), engine.connect() as writer:
            row_id = writer.execute(
                text(
                    "INSERT INTO kbs_audit (at, actor, action, target, outcome) "
                    "VALUES (:at, 'admin (admin)', 'resource.put', 'default/key/late', 'ok') RETURNING id"
                ),
                {"at": time.time() - 3 * CHAIN_GRACE_SECONDS},
            ).scalar_one()
            writer.commit()
            code, result, message = verify(second)
            assert (code, result["intact"], result["broken_at"], result["unchained"]) == (1, False, None, 1), message
            assert f"audit log not verified: 1 entries committed more than {CHAIN_GRACE_SECONDS:.0f} s ago" in message
            assert f"database ids {row_id};" in result["problem"]
    finally:
        engine.dispose()
    code, result, message = verify(first)  # the head free again: chained, and the chain verifies
    assert (code, result["unchained"]) == (0, 0), message
    assert export(first)[-1]["target"] == "default/key/late"
