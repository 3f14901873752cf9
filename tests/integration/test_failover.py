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
from tests.integration._helpers import SECRET, provision
from tests.integration._kbs_server import KbsServer, free_port
from tests.integration.conftest import new_database_url

# Every guest here is 127.0.0.1: the limits would meter the test's own load, not a client's abuse.
UNLIMITED = {"rate_limit": {"auth_per_minute": 0, "attest_per_minute": 0}}


def _replicas(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[KbsServer, KbsServer]:
    database = new_database_url(request, "postgres", tmp_path)
    first = KbsServer(tmp_path / "conf", database_url=database, config=UNLIMITED)
    return first, KbsServer(tmp_path / "conf", database_url=database, init=False)


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


def test_replica_killed_under_a_stream_of_handshakes(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Eight guests handshaking without pause, spread over both replicas; one replica is killed while handshakes are
    in flight on it. Every guest's fetch succeeds; some had to start their handshake again."""
    first, second = _replicas(tmp_path, request)
    outcomes: Counter[str] = Counter()
    restarted = 0
    stop = threading.Event()

    def guest(index: int) -> None:
        nonlocal restarted
        brokers = [first.url, second.url]
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
    assert restarted > 0  # handshakes cut off by the kill (or begun on the dead replica) started again
