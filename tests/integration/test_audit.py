"""The hash-chained, fail-closed audit log (issue 14) against real `kbs serve` processes on SQLite and PostgreSQL:
what is audited (admin writes, refused admin calls, attestation outcomes with their reason, releases), `kbs admin
audit verify` catching an edited, deleted, reordered or truncated log (and, with an exported anchor, a consistently
rewritten one), incremental `audit export`, a refused audit write failing its operation, and the upgrade of an audit
log written before the chain existed. Replicas chaining one log: test_audit_sequencer.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, text

from kbs._audit_chain import AuditRecord, Entry
from kbs.admin_auth import mint_token
from kbs.admin_client import AdminClient, AdminError
from kbs.storage import Store
from tests.conftest import run_cli
from tests.integration._audit import database, export, provision, verify
from tests.integration._guest import Guest
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer
from tests.integration.conftest import new_database_url

AUDIT_COLUMNS = "seq, at, actor, action, target, outcome, reason, claims_digest, prev_digest, digest"


@pytest.fixture(params=["sqlite", "postgres"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KbsServer]:
    url = new_database_url(request, request.param, tmp_path)
    with KbsServer(tmp_path / "kbs", database_url=url) as server:
        yield server


def admin_key(server: KbsServer) -> Any:
    return serialization.load_pem_private_key((server.config_dir / "admin.key").read_bytes(), password=None)


def test_every_outcome_is_audited_and_the_chain_verifies(broker: KbsServer) -> None:
    provision(broker)
    guest = Guest(broker.url)
    token = guest.handshake()
    assert guest.resource("default/key/1", token).status_code == 200
    assert_error(guest.resource("default/key/404", token), 404, "ResourceNotFound")
    refused = Guest(broker.url)
    nonce = refused.auth().json()["nonce"]
    assert_error(refused.attest(nonce, bind_nonce="another nonce"), 401, "AttestationFailed")
    assert_error(refused.attest(nonce), 401, "UnAuthorized", "already used")
    url = broker.url + "/kbs/v0/resource/default/key/9"
    assert httpx.post(url, content=b"x").status_code == 401
    assert httpx.post(url, content=b"x", headers={"Authorization": "Bearer not.a.token"}).status_code == 401
    with AdminClient(broker.url, mint_token(admin_key(broker), role="auditor", ttl_seconds=60)) as auditor:
        with pytest.raises(AdminError):
            auditor.put_resource("default/key/9", b"x")
        entries = auditor.audit(100)[::-1]
    assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
    rows = {(e["action"], e["outcome"], e["target"]): e for e in entries}
    assert rows["resource.put", "ok", "default/key/1"]["actor"] == "admin (admin)"
    attested = rows["attest", "token", "sample"]
    assert attested["actor"].startswith("guest 127.0.0.1 session ")
    assert len(attested["claims_digest"]) == 64
    released = rows["resource.release", "released", "default/key/1"]
    assert released["claims_digest"] == attested["claims_digest"]
    assert rows["resource.refused", "ResourceNotFound", "default/key/404"]["claims_digest"] == released["claims_digest"]
    rejected = [e for e in entries if (e["action"], e["outcome"]) == ("attest", "rejected")]
    assert [e["reason"] for e in rejected] == ["report_data_mismatch", rejected[1]["reason"]]
    assert "already used" in rejected[1]["reason"]
    admin_refusals = [e for e in entries if e["action"] == "admin.refused"]
    assert [(e["outcome"], e["target"]) for e in admin_refusals] == [
        ("UnAuthorized", "POST /kbs/v0/resource/default/key/9"),
        ("UnAuthorized", "POST /kbs/v0/resource/default/key/9"),
        ("AdminDenied", "POST /kbs/v0/resource/default/key/9"),
    ]
    assert all(e["actor"] == "client 127.0.0.1" for e in admin_refusals)
    assert "lacks permission resource:write" in admin_refusals[2]["reason"]
    text_of_log = json.dumps(entries)
    assert SECRET.decode("latin-1") not in text_of_log
    assert token not in text_of_log
    assert broker.token not in text_of_log
    code, result, message = verify(broker)
    assert (code, result["intact"], result["entries"]) == (0, True, len(entries)), message
    assert result["head_digest"] == entries[-1]["digest"]


def test_export_is_incremental_json_lines(broker: KbsServer) -> None:
    for n in range(5):
        broker.admin.put_resource(f"default/key/{n}", b"v")
    everything = export(broker)
    assert [e["target"] for e in everything] == [f"default/key/{n}" for n in range(5)]
    assert export(broker, "--after-id", "3") == everything[3:]
    assert export(broker, "--since", str(everything[2]["at"])) == everything[2:]
    response = httpx.get(
        broker.url + "/kbs/v0/admin/audit/export",
        params={"after_id": 1, "limit": 2},
        headers={"Authorization": f"Bearer {broker.token}"},
    )
    assert response.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in response.text.splitlines()] == everything[1:3]


def test_a_kek_rotation_is_audited(broker: KbsServer) -> None:
    broker.admin.put_resource("default/key/1", SECRET)
    done = run_cli("kbs", "kek", "rotate", "--config", str(broker.config_file), "--grace-seconds", "1.2")
    assert done.returncode == 0, done.stderr.decode()
    entries = [e for e in export(broker) if e["action"].startswith("kek.")]
    assert [(e["action"], e["outcome"]) for e in entries] == [("kek.rotate", "started"), ("kek.retire", "ok")]
    assert all(e["actor"].startswith("kbs kek rotate (") for e in entries)
    assert verify(broker)[0] == 0


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(f"SELECT {AUDIT_COLUMNS} FROM kbs_audit ORDER BY seq")))


def _put_back(engine: Engine, rows: list[Any], head: tuple[int, str]) -> None:
    """The log as it was: every row and the head."""
    names = AUDIT_COLUMNS.split(", ")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM kbs_audit"))
        insert = f"INSERT INTO kbs_audit ({AUDIT_COLUMNS}) VALUES ({', '.join(':' + n for n in names)})"
        connection.execute(text(insert), [dict(zip(names, row, strict=True)) for row in rows])
        connection.execute(text("DELETE FROM kbs_audit_head"))
        connection.execute(
            text("INSERT INTO kbs_audit_head (id, seq, digest) VALUES (1, :s, :d)"), {"s": head[0], "d": head[1]}
        )


TAMPERING = {
    "edited": (["UPDATE kbs_audit SET target = 'default/key/evil' WHERE seq = 3"], 3, "entry 3 was altered"),
    "deleted": (["DELETE FROM kbs_audit WHERE seq = 4"], 4, "entry 4 is missing"),
    "reordered": (
        [
            "UPDATE kbs_audit SET seq = -1 WHERE seq = 2",
            "UPDATE kbs_audit SET seq = 2 WHERE seq = 3",
            "UPDATE kbs_audit SET seq = 3 WHERE seq = -1",
        ],
        2,
        "entry 2 does not follow entry 1",
    ),
    "truncated": (["DELETE FROM kbs_audit WHERE seq > 4"], 5, "entries 5..6 are missing at the tail"),
    "head removed": (["DELETE FROM kbs_audit_head"], 7, "the chain head row is missing"),
    "head rewound": (["UPDATE kbs_audit_head SET seq = 5"], 5, "entry 5 is not the chain head's entry"),
}


def test_verify_names_the_first_broken_entry(broker: KbsServer) -> None:
    for n in range(6):
        broker.admin.put_resource(f"default/key/{n}", b"v")
    assert verify(broker)[0] == 0
    engine = database(broker)
    rows = _rows(engine)
    head = (rows[-1].seq, rows[-1].digest)
    try:
        for name, (statements, seq, problem) in TAMPERING.items():
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(text(statement))
            code, result, message = verify(broker)
            assert (code, result["intact"], result["broken_at"]) == (1, False, seq), (name, result)
            assert problem in result["problem"], (name, result)
            assert f"audit log broken at entry {seq}: {problem}" in message, name
            _put_back(engine, rows, head)
            assert verify(broker)[0] == 0, name
    finally:
        engine.dispose()


def test_a_consistently_rewritten_log_is_caught_by_an_exported_anchor(broker: KbsServer) -> None:
    """SHA-256 needs no key: whoever can write the database can rewrite entry 2 onwards and the head so the chain
    holds again. An entry's digest kept outside (an earlier export) shows the history it vouched for is gone."""
    for n in range(4):
        broker.admin.put_resource(f"default/key/{n}", b"v")
    anchor = export(broker)[2]
    engine = database(broker)
    try:
        rows = _rows(engine)
        prev = rows[0].digest
        rewritten = []
        for row in rows[1:]:
            target = "default/key/evil" if row.seq == 2 else row.target
            record = AuditRecord(row.actor, row.action, target, row.outcome, row.at, row.reason, row.claims_digest)
            entry = Entry.make(row.seq, record, prev)
            rewritten.append({"seq": row.seq, "target": target, "prev": prev, "digest": entry.digest})
            prev = entry.digest
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE kbs_audit SET target = :target, prev_digest = :prev, digest = :digest WHERE seq = :seq"),
                rewritten,
            )
            connection.execute(text("UPDATE kbs_audit_head SET digest = :d"), {"d": prev})
    finally:
        engine.dispose()
    assert verify(broker)[0] == 0  # what a key-less chain cannot show by itself
    code, result, message = verify(broker, "--anchor", f"{anchor['id']}:{anchor['digest']}")
    assert (code, result["broken_at"]) == (1, 3), message
    assert "history rewritten" in result["problem"]


def test_a_refused_audit_write_fails_the_operation(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """PostgreSQL refuses the audit INSERT (a trigger, as a revoked privilege or a full disk would): the resource
    put, the attestation and the release fail with 503 and store nothing; lifted, the log still verifies."""
    url = new_database_url(request, "postgres", tmp_path)
    with KbsServer(tmp_path / "kbs", database_url=url) as server:
        provision(server)
        guest = Guest(server.url)
        token = guest.handshake()
        engine = database(server)
        try:
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
                    )
                )
                connection.execute(
                    text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON kbs_audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                    )
                )
            put = httpx.post(
                server.url + "/kbs/v0/resource/default/key/2",
                content=b"never stored",
                headers={"Authorization": f"Bearer {server.token}"},
            )
            assert_error(put, 503, "ServiceUnavailable")
            assert_error(guest.resource("default/key/1", token), 503, "ServiceUnavailable")
            late = Guest(server.url)
            nonce = late.auth().json()["nonce"]
            assert_error(late.attest(nonce), 503, "ServiceUnavailable")
            with engine.begin() as connection:
                connection.execute(text("DROP TRIGGER refuse ON kbs_audit"))
                state = connection.execute(text("SELECT state FROM kbs_session WHERE nonce = :n"), {"n": nonce})
                assert state.scalar_one() == "challenged"  # not attested: no token was issued
        finally:
            engine.dispose()
        assert all(r["path"] != "default/key/2" for r in server.admin.list_resources())
        assert verify(server)[0] == 0


def test_an_older_audit_log_is_chained_on_upgrade(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A database at revision 0005 with plain audit rows: the upgrade chains them in the order they were written
    and the broker appends after them."""
    url = new_database_url(request, "sqlite", tmp_path)
    store = Store(url)
    config = Config()
    config.set_main_option("script_location", str(Path("kbs/migrations").resolve()))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(
            text(
                "INSERT INTO kbs_audit (at, actor, action, target, outcome, claims_digest) VALUES "
                "(1.5, 'admin (admin)', 'resource.put', 'default/key/1', 'ok', NULL), "
                "(2.5, 'token', 'resource.release', 'default/key/1', 'released', :digest)"
            ),
            {"digest": "ab" * 32},
        )
    store.engine.dispose()
    for made in tmp_path.glob("kbs.sqlite*"):
        made.chmod(0o600)  # the broker refuses a database others can read
    with KbsServer(tmp_path / "kbs", database_url=url) as server:
        server.admin.put_resource("default/key/2", b"v")
        entries = export(server)
        assert [(e["id"], e["action"]) for e in entries] == [
            (1, "resource.put"),
            (2, "resource.release"),
            (3, "resource.put"),
        ]
        assert verify(server)[0] == 0


def test_kill_9_during_admin_writes_leaves_no_write_without_its_entry(broker: KbsServer) -> None:
    """kill -9 of the broker while four writers stream resource puts: after the restart the chain verifies, and
    the puts stored and the puts audited are the same set (each committed with its entry, or neither was)."""
    acknowledged: list[str] = []
    started = threading.Event()

    def stream(writer: int) -> None:
        with AdminClient(broker.url, broker.token, timeout=10) as client:
            for n in range(100_000):
                path = f"stream/key/{writer}-{n}"
                try:
                    client.put_resource(path, b"v")
                except AdminError:
                    return  # the broker is gone
                acknowledged.append(path)
                started.set()

    with ThreadPoolExecutor(4) as pool:
        writers = [pool.submit(stream, w) for w in range(4)]
        assert started.wait(30)
        time.sleep(1.0)
        os.kill(broker.pid, signal.SIGKILL)
        for writer in writers:
            writer.result()
    broker.restart()
    code, _, message = verify(broker)
    assert code == 0, message
    stored = {r["path"] for r in broker.admin.list_resources() if r["path"].startswith("stream/")}
    audited = {
        e["target"] for e in export(broker) if e["action"] == "resource.put" and e["target"].startswith("stream/")
    }
    assert len(acknowledged) > 10
    assert set(acknowledged) <= stored
    assert stored == audited
