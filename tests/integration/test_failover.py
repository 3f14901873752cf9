"""A replica killed (SIGKILL) in the middle of guests' handshakes: the guest (the attestation agent's client, and the
agent's CLI as a process) restarts the handshake on the other replica and gets its secret. Two real `kbs serve`
replicas on one PostgreSQL database; nothing is mocked."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from attestation_agent.attesters.sample import SampleAttester
from attestation_agent.kbs_client import KbsClient

from tests.conftest import run_cli
from tests.integration._agent_service import AgentService
from tests.integration._helpers import SECRET, provision
from tests.integration._kbs_server import UNLIMITED, KbsServer, free_port
from tests.integration.conftest import new_database_url

# Every guest here is 127.0.0.1: the limits would meter the test's own load, not a client's abuse.


def _replicas(
    tmp_path: Path, request: pytest.FixtureRequest, ports: list[int] | None = None
) -> tuple[KbsServer, KbsServer]:
    database = new_database_url(request, "postgres", tmp_path)
    first, second = (ports[0], ports[1]) if ports else (None, None)
    replica = KbsServer(tmp_path / "conf", database_url=database, config=UNLIMITED, port=first)
    return replica, KbsServer(tmp_path / "conf", database_url=database, init=False, port=second)


class _KillBetweenAuthAndAttest(SampleAttester):
    """Kills the replica with SIGKILL the first time evidence is asked for: after /auth was answered (the session
    and its nonce are in the database), before /attest is sent."""

    def __init__(self, replica: KbsServer) -> None:
        self.replica = replica
        self.killed = False

    def evidence(self, report_data: bytes) -> dict[str, object]:
        if not self.killed:
            os.kill(self.replica.pid, signal.SIGKILL)
            self.killed = True
        return super().evidence(report_data)


def test_replica_killed_between_auth_and_attest(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    first, second = _replicas(tmp_path, request)
    with first, second:
        provision(first)
        attester = _KillBetweenAuthAndAttest(first)
        with KbsClient([first.url, second.url], attester) as client:
            assert client.get_resource("kbs:///default/key/1") == SECRET
            # one handshake cut off on the first replica, a fresh one (new session, new nonce) on the second
            assert client.handshakes == 2
            assert client.base == second.url + "/kbs/v0"
        assert attester.killed
        # The agent's CLI, as a process, with the dead replica first in its list of brokers.
        dead = f"http://127.0.0.1:{free_port()}"
        done = run_cli(
            "attestation-agent",
            "get-resource",
            "--kbs",
            f"{first.url},{dead},{second.url}",
            "--tee",
            "sample",
            "kbs:///default/key/1",
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout == SECRET


def test_agent_service_fails_over_between_replicas(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """`attestation-agent serve --kbs DEAD,A,B`: the handshake moves past the dead URL; when A is then killed, the
    next fetch goes to B with the session attested at A (both hold it: one database)."""
    first, second = _replicas(tmp_path, request)
    dead = f"http://127.0.0.1:{free_port()}"
    with first, second, AgentService(f"{dead},{first.url},{second.url}", tmp_path) as service:
        provision(first)
        assert service.get("/cdh/resource/default/key/1").content == SECRET
        os.kill(first.pid, signal.SIGKILL)
        again = service.get("/cdh/resource/default/key/1")
        assert again.status_code == 200, again.text
        assert again.content == SECRET


@pytest.mark.parametrize("route", ["replica list", "nginx"])
def test_replica_killed_under_a_stream_of_handshakes(
    tmp_path: Path, request: pytest.FixtureRequest, route: str
) -> None:
    """Eight guests handshaking without pause, spread over both replicas (by their list of replicas, or by nginx with
    deploy/nginx.conf); one replica is killed while handshakes are in flight on it. Every guest's fetch succeeds.
    With a list, some guests had to start their handshake again; behind nginx, nginx moves a request it could not
    send to the other replica, and one the dead replica had taken comes back 502, which the guest retries whole."""
    if route == "nginx":
        url, ports = request.getfixturevalue("balancer")
        first, second = _replicas(tmp_path, request, ports)
    else:
        first, second = _replicas(tmp_path, request)
    outcomes: Counter[str] = Counter()
    restarted = 0
    stop = threading.Event()

    def guest(index: int) -> None:
        nonlocal restarted
        brokers = [first.url, second.url] if route == "replica list" else [url]
        random.Random(index).shuffle(brokers)
        while not stop.is_set():
            with KbsClient(brokers, SampleAttester()) as client:
                try:
                    value = client.get_resource("kbs:///default/key/1")
                    outcomes["ok" if value == SECRET else "wrong secret"] += 1
                except Exception as exc:  # counted: the test asserts there is none
                    outcomes[f"{type(exc).__name__}: {exc}"] += 1
                restarted += client.handshakes - 1

    with first, second:
        provision(first)
        threads = [threading.Thread(target=guest, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            before = outcomes["ok"]
            os.kill(first.pid, signal.SIGKILL)
            time.sleep(3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
    assert before > 0
    assert set(outcomes) == {"ok"}, outcomes
    assert outcomes["ok"] > before  # guests kept being served after the kill
    if route == "replica list":
        assert restarted > 0  # handshakes cut off by the kill (or begun on the dead replica) started again
