"""The broker under load (issue 13), against a real `kbs serve` on SQLite and PostgreSQL: a handshake (auth, attest,
resource) is at most one write transaction per step, three in all, and two reads (counted by the engine's own
events, read from /metrics); a nonce raced by concurrent /attest calls yields one token; 64 clients end with no
error, no leaked session and the session table swept back; `--workers 2` share nothing but the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import policies
from kbs.settings import load as load_settings
from tests.integration._guest import Guest
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer
from tests.integration._load import soak
from tests.integration.conftest import new_database_url

HANDSHAKES = 5
WRITES_PER_HANDSHAKE = 3
READS_PER_HANDSHAKE = 2
# The token signing keys are re-read every few seconds (kbs.signing): a read now and then outside the budget.
KEY_RING_READS = 3
_COUNTER = re.compile(r'^kbs_db_transactions_total\{kind="(read|write)"\} (\d+)$', re.MULTILINE)


def transactions(url: str) -> dict[str, int]:
    return {kind: int(n) for kind, n in _COUNTER.findall(httpx.get(url + "/metrics").text)}


def provision(server: KbsServer) -> KbsServer:
    server.admin.put_resource("default/key/1", SECRET)
    server.admin.put_reference_value("sample_svn", ["1"])
    server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
    return server


@pytest.fixture(params=["sqlite", "postgres"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KbsServer]:
    url = new_database_url(request, request.param, tmp_path)
    with KbsServer(tmp_path / "kbs", database_url=url) as server:
        yield provision(server)


def test_a_handshake_is_three_writes_and_two_reads(broker: KbsServer) -> None:
    guests = [Guest(broker.url) for _ in range(HANDSHAKES)]
    before = transactions(broker.url)
    for guest in guests:
        guest.handshake()
        released = guest.resource("default/key/1")
        assert released.status_code == 200, released.text
        assert guest.decrypt(released.json()) == SECRET
    after = transactions(broker.url)
    writes, reads = after["write"] - before["write"], after["read"] - before["read"]
    assert writes == WRITES_PER_HANDSHAKE * HANDSHAKES
    assert READS_PER_HANDSHAKE * HANDSHAKES <= reads <= READS_PER_HANDSHAKE * HANDSHAKES + KEY_RING_READS


def test_refused_evidence_spends_the_nonce_in_one_write(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    before = transactions(broker.url)
    assert_error(guest.attest(nonce, bind_nonce="another nonce"), 401, "AttestationFailed")
    assert transactions(broker.url)["write"] - before["write"] == 1
    assert_error(guest.attest(nonce), 401, "UnAuthorized", "already used")


def test_a_raced_nonce_yields_one_token(broker: KbsServer) -> None:
    guest = Guest(broker.url)
    nonce = guest.auth().json()["nonce"]
    body = guest.attest_body(nonce)
    cookies = dict(guest.http.cookies)

    def attest(_: int) -> httpx.Response:
        with httpx.Client(base_url=broker.url + "/kbs/v0", cookies=cookies, timeout=30) as client:
            return client.post("/attest", json=body)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attest, range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7, [a.text[:200] for a in answers]
    for refused in (a for a in answers if a.status_code == 401):
        assert_error(refused, 401, "UnAuthorized", "already used")


# The always-run load test; `bench/kbs_load.py` runs the full one (64 clients, 10,000 handshakes) with the same checks.
LOAD_CLIENTS = 64
LOAD_HANDSHAKES = 320
LOAD_SECONDS = 300
SESSION_TTL = 30


def worker_processes(pid: int) -> list[int]:
    """The worker processes uvicorn spawned under `pid` (not multiprocessing's resource tracker)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.parametrize(("kind", "workers"), [("sqlite", 1), ("postgres", 2)])
def test_load_ends_with_no_error_no_leaked_session_and_the_session_table_swept(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, workers: int
) -> None:
    url = new_database_url(request, kind, tmp_path)
    config = {"sessions": {"ttl_seconds": SESSION_TTL}, "rate_limit": {"auth_per_minute": 0, "attest_per_minute": 0}}
    with KbsServer(tmp_path / "kbs", config=config, database_url=url, workers=workers) as server:
        if workers > 1:
            assert len(worker_processes(server.pid)) >= workers
        provision(server)
        report = soak(
            server.url,
            load_settings(server.config_file).database.url,
            clients=LOAD_CLIENTS,
            handshakes=LOAD_HANDSHAKES,
            seconds=LOAD_SECONDS,
            sweep_within=3 * SESSION_TTL,
            secret=SECRET,
        )
    assert not report.result.errors
    assert report.result.ops == LOAD_HANDSHAKES
    assert report.leaked == 0, report.after_load
    assert report.after_load["attested"] == report.start_sessions + LOAD_HANDSHAKES
    assert report.after_sweep == report.start_sessions


def test_workers_share_nothing_but_the_database(tmp_path: Path) -> None:
    """auth, attest and resource each on a new connection, so on whichever worker accepts it."""
    with KbsServer(tmp_path / "kbs", workers=2) as server:
        assert len(worker_processes(server.pid)) == 2
        provision(server)
        for _ in range(6):
            guest = Guest(server.url)
            nonce = guest.auth().json()["nonce"]
            cookies = dict(guest.http.cookies)
            attested = httpx.post(
                server.url + "/kbs/v0/attest", json=guest.attest_body(nonce), cookies=cookies, timeout=30
            )
            assert attested.status_code == 200, attested.text
            released = httpx.get(server.url + "/kbs/v0/resource/default/key/1", cookies=cookies, timeout=30)
            assert guest.decrypt(released.json()) == SECRET
