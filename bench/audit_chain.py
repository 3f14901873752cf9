"""Audited write transactions per second on PostgreSQL, with the chain head locked by every audited commit (the
code before kbs._audit_sequencer) against entries chained after their commit, alternated in one run; and, after,
how long an entry waits for its chaining (commit to chained, p50 and p99) and the chain transactions per write.

Each round makes an empty database per variant, two replicas (two stores, each with its own pool and, when the code
has one, its chainer) and `--threads` writers spread over them, each committing the resource step's write (an audit
entry and a decision) in a loop for `--seconds`. A probe thread commits one entry every 20 ms and polls until it is
chained. The variants' code is imported from two source trees (`--before`, `--after`) in child processes.

    git archive main | tar -x -C /tmp/before
    python bench/audit_chain.py --before /tmp/before --after . [--rounds 3] [--threads 8] [--seconds 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from kbs._audit_chain import AuditRecord
from kbs.storage import DecisionRecord, Store

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PROBE_EVERY = 0.02
POLL_EVERY = 0.001


def decision(now: float) -> DecisionRecord:
    return DecisionRecord(
        at=now,
        kind="resource",
        outcome="released",
        denied=False,
        tee="sample",
        path="default/key/1",
        policy_id="resource",
        policy_sha256="0" * 64,
        input=None,
        reference_values=None,
        trust_vector=None,
        detail=None,
    )


@contextmanager
def empty_database(admin_url: str) -> Iterator[str]:
    name = f"bench_audit_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def probe(store: Store, stop: threading.Event, latencies: list[float]) -> None:
    """Commit an entry with a unique `at` (an indexed column), then poll until the chainer has given it a seq."""
    while not stop.wait(PROBE_EVERY):
        at = time.time() + secrets.randbelow(10**6) * 1e-12
        store.audit(AuditRecord("bench probe", "probe", "probe", "ok", at))
        committed = time.perf_counter()
        while True:
            with store.engine.connect() as connection:
                seq = connection.exec_driver_sql("SELECT seq FROM kbs_audit WHERE at = %(at)s", {"at": at}).scalar()
            if seq is not None:
                latencies.append(time.perf_counter() - committed)
                break
            if stop.wait(POLL_EVERY):
                return


def child(url: str, threads: int, seconds: float) -> dict[str, Any]:
    """One measure with the `kbs` this process imports (the source tree on PYTHONPATH)."""
    chained_after_commit = importlib.util.find_spec("kbs._audit_chainer") is not None
    stores = [Store(url, threads=threads) for _ in range(2)]
    stores[0].migrate()
    chainers: list[Any] = []
    if chained_after_commit:
        from kbs._audit_chainer import AuditChainer  # noqa: PLC0415 (only the tree after the change has it)

        chainers = [AuditChainer(store) for store in stores]
        for chainer in chainers:
            chainer.start()
    stop = threading.Event()
    counts = [0] * threads

    def write(n: int) -> None:
        store = stores[n % 2]
        while not stop.is_set():
            now = time.time()
            store.audit(AuditRecord("guest bench", "resource.release", "default/key/1", "released", now), decision(now))
            counts[n] += 1

    latencies: list[float] = []
    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    if chained_after_commit:
        workers.append(threading.Thread(target=probe, args=(stores[1], stop, latencies)))
    before = [store.transactions() for store in stores]
    cpu = time.process_time()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    cpu = time.process_time() - cpu
    for chainer in chainers:
        chainer.stop()
    spent = [store.transactions() - start for store, start in zip(stores, before, strict=True)]
    for store in stores:
        store.engine.dispose()
    writes = sum(counts)
    latencies.sort()
    return {
        "chained_after_commit": chained_after_commit,
        "writes_per_s": writes / seconds,
        "cpu_ms_per_write": cpu * 1000 / writes,
        "chain_transactions_per_write": sum(getattr(s, "chain", 0) for s in spent) / writes,
        "chain_p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
        "chain_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None,
        "probes": len(latencies),
    }


def run_child(tree: str, url: str, threads: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    argv = [sys.executable, __file__, "--child", url, "--threads", str(threads), "--seconds", str(seconds)]
    done = subprocess.run(argv, env=env, capture_output=True, check=True, cwd=tree)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="source tree of the code before (head locked by every audited commit)")
    parser.add_argument("--after", default=".", help="source tree of the code after (default: this one)")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="a PostgreSQL database to create the others from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.seconds)))
        return 0
    trees = {"after": args.after} | ({"before": args.before} if args.before else {})
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_number in range(args.rounds):
        for name, tree in trees.items() if round_number % 2 else reversed(trees.items()):
            with empty_database(args.admin_url) as url:
                result = run_child(tree, url, args.threads, args.seconds)
            results[name].append(result)
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"round {round_number + 1} {name:6} {json.dumps(result)} load {load}", flush=True)
    print(f"medians of {args.rounds} rounds, {args.threads} threads, 2 replicas, PostgreSQL:")
    for name, rounds in results.items():
        medians = {
            key: round(statistics.median(r[key] for r in rounds), 3)
            for key in rounds[0]
            if isinstance(rounds[0][key], float)
        }
        print(f"  {name:6} {json.dumps(medians)}")
    if "before" in results:
        ratio = statistics.median(
            a["writes_per_s"] / b["writes_per_s"] for a, b in zip(results["after"], results["before"], strict=True)
        )
        print(f"  after/before writes per second (median of per-round ratios): {ratio:.2f}x")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
