"""The broker's transaction budget (issue 13) against a real `kbs serve`, on SQLite and PostgreSQL: a handshake
(auth, attest, resource) is at most one write transaction per step, three in all, and two reads; a nonce raced by
concurrent /attest calls yields one token. Counted by the engine's own events, read from /metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import policies
from tests.integration._guest import Guest
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer
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

    def attest(_: int) -> int:
        with httpx.Client(base_url=broker.url + "/kbs/v0", cookies=cookies, timeout=30) as client:
            return client.post("/attest", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attest, range(8)))
    assert statuses == [200] + [401] * 7
