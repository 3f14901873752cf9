"""KBS handshake benchmark: complete RCAR handshakes + resource fetches per second, p50/p99 latency, at
concurrency 1, 16 and 64, against a real `kbs serve` (SQLite, or PostgreSQL with --database-url) and against a
bare FastAPI app with the same three routes served the same way, in the same run.

    .venv/bin/python bench/kbs_handshake.py [--seconds 5] [--rounds 3] [--json]
        [--database-url postgresql://...] [--replicas 2] [--workers 2] [--server-cpus 0 --client-cpus 1]

A --database-url must name an empty database: its data keys are sealed under the key-encryption key of the run
that made them, and each run makes its own.

One operation = POST /auth, POST /attest (sample evidence bound to the client's P-256 key, made once per client),
GET /resource (JWE, decrypted by the client). The bare app answers the same three requests with fixed JSON; its
client skips the evidence and decryption work. The ratio is bare ops/s over broker ops/s (how many times slower
the real thing is); with --rounds N each level runs N times, the round with the median ratio is reported and the
range over the rounds beside it (`*_range`: [min, max]), since a shared machine swings between rounds.

Also measured, because they hold on a shared, loaded machine where rates swing:
- the write (and read) transactions per handshake, from the broker's own counters (/metrics), and the audit
  chainer's transactions per handshake (`chain`: one serves many handshakes, off their path);
- the server CPU time per operation, broker against bare app, from /proc of the server processes (`cpu_ratio`:
  how many times the bare app's CPU a handshake costs the broker, whatever else runs on the machine);
- the load generator's own CPU share (1.0 = one core) and its CPU time per operation: above 0.85 the level is run
  again with a second client process, so the generator is not what is measured;
- how the cores were shared (`*_cpu_shares`, the "cores used" line): CPU time over wall time of the servers, the
  load generator and, on PostgreSQL, the backends serving the run's database (found by their process title; a
  backend that exits within the level, as with a connection opened per transaction, is missed).
With --workers N > 1 each level also runs a one-worker broker on the same database: `worker_scaling` is N workers'
ops/s over one worker's, and `kbs_cpu_ms_per_op_one_worker` the one worker's CPU per handshake.

Which figure to read on a small machine (2 cores). The client, the servers and the database share the cores, so a
rate is bounded by whichever needs the most CPU per operation. The generator (aiohttp, see
tests/integration/_load.py) costs about a quarter of the broker's CPU per handshake (1.1-2.5 ms against 4.5-10 ms,
as the machine's speed swings) but 0.6-0.8 of the bare app's (0.5-0.7 ms against 0.7-1 ms): a broker level is bound
by the broker, while the bare app's rate shares its cores with a client costing nearly as much as the app. So
`bare_over_kbs` understates the gap a little, and `cpu_ratio` (which no co-tenant moves) is the comparison to read.
For workers: one broker worker uses at most one core, so `worker_scaling` can reach N only if N cores are free of
the client and the database, and only if one worker is CPU-bound in the first place. Read it beside the "cores used"
line: a one-worker server share well under 1.0 means the worker waits (on PostgreSQL, for row locks and WAL flushes)
and a second worker adds what it overlaps of that wait, not a core; a server share near 2 - client - database means
the workers took all the machine had; `kbs_cpu_ms_per_op` equal to `kbs_cpu_ms_per_op_one_worker` means the
workers do not contend. Pinning (--server-cpus 0,1 --client-cpus 1, or servers on 0 and the client on 1) makes the
sharing explicit, not larger.

--json prints one object per concurrency level on stdout: concurrency, kbs_ops, kbs_p50_ms, kbs_p99_ms, bare_ops,
bare_p50_ms, bare_p99_ms, transactions_per_handshake (write transactions; read_transactions_per_handshake beside
it), and the CPU and scaling figures above.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

from tests.integration._kbs_server import KbsServer, free_port  # noqa: E402
from tests.integration._load import LoadResult, run_load  # noqa: E402

SECRET = os.urandom(32)
LEVELS = (1, 16, 64)
CLIENT_SATURATED = 0.85
_TICKS = os.sysconf("SC_CLK_TCK")
_COUNTER = re.compile(r'^kbs_db_transactions_total\{kind="(read|write|chain)"\} (\d+)$', re.MULTILINE)


# -- the server side: processes, their CPU time, the broker's transaction counters ---------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every process descending from it (uvicorn's workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def cpu_seconds(root: int) -> float:
    """User + system CPU time of a process tree, from /proc/<pid>/stat (utime, stime)."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def database_cpu_seconds(database: str) -> dict[int, float]:
    """CPU time of each PostgreSQL backend serving `database`, by pid: its process title is
    `postgres: <cluster>: <user> <database> <client address> <state>`. A backend that exits before the level ends
    is not counted: the figure holds while the broker's pool keeps its connections."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").split()
                if not title or title[0] != "postgres:" or database not in title[3:5]:
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def pin(root: int, cpus: set[int] | None) -> None:
    if cpus:
        for pid in process_tree(root):
            os.sched_setaffinity(pid, cpus)


def transactions(urls: list[str]) -> dict[str, int]:
    out = {"read": 0, "write": 0, "chain": 0}
    for url in urls:
        for kind, n in _COUNTER.findall(httpx.get(url + "/metrics").text):
            out[kind] += int(n)
    return out


@dataclass
class Target:
    name: str
    urls: list[str]
    pids: list[int]
    real: bool
    counts_transactions: bool
    database: str | None = None  # a PostgreSQL database name: its backends' CPU is measured too

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def database_cpu(self) -> dict[int, float]:
        return database_cpu_seconds(self.database) if self.database else {}


def start_bare(workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_bare_app.py"), str(port), str(workers)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("bare app did not start")


# -- the client side -------------------------------------------------------------------------------------------------


def _client_process(urls: list[str], concurrency: int, seconds: float, real: bool, cpus: list[int]) -> LoadResult:
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    return asyncio.run(run_load(urls, concurrency, seconds=seconds, real=real, secret=SECRET if real else None))


@dataclass
class Measure:
    result: LoadResult
    server_cpu: float
    database_cpu: float
    client_processes: int
    transactions: dict[str, int] | None

    @property
    def cpu_ms_per_op(self) -> float:
        return self.server_cpu / self.result.ops * 1e3 if self.result.ops else float("nan")

    def shares(self) -> dict[str, float]:
        """How the cores were shared over the level: each process group's CPU time over the wall time (1.0 = one
        core busy throughout), the servers, the load generator and the database's backends."""
        elapsed = self.result.elapsed or float("nan")
        return {
            "server": round(self.server_cpu / elapsed, 2),
            "client": round(self.result.cpu_share, 2),
            "database": round(self.database_cpu / elapsed, 2),
        }


def measure(target: Target, level: int, seconds: float, pool: ProcessPoolExecutor, client_cpus: list[int]) -> Measure:
    """One level against one target, with a second client process when one saturates its core."""
    processes = 1
    while True:
        before_tx = transactions(target.urls) if target.counts_transactions else None
        before_cpu, before_db = target.cpu(), target.database_cpu()
        shares = [level // processes + (1 if i < level % processes else 0) for i in range(processes)]
        futures = [
            pool.submit(_client_process, target.urls, share, seconds, target.real, client_cpus) for share in shares
        ]
        results = [f.result() for f in futures]
        server_cpu = target.cpu() - before_cpu
        database_cpu = sum(t - before_db.get(pid, 0.0) for pid, t in target.database_cpu().items())
        after_tx = transactions(target.urls) if target.counts_transactions else None
        result = results[0]
        for other in results[1:]:
            result = result.merge(other)
        saturated = max(r.cpu_share for r in results) > CLIENT_SATURATED
        if saturated and processes == 1 and level > 1:
            processes = 2
            continue
        counted = None
        if before_tx is not None and after_tx is not None:
            counted = {k: after_tx[k] - before_tx[k] for k in after_tx}
        if result.errors:
            print(f"{target.name} c={level}: errors {dict(result.errors)}", file=sys.stderr)
        return Measure(result, server_cpu, database_cpu, processes, counted)


def row(level: int, kbs: Measure, bare: Measure, one_worker: Measure | None) -> dict[str, Any]:
    k, b = kbs.result, bare.result
    tx = kbs.transactions
    out: dict[str, Any] = {
        "concurrency": level,
        "kbs_ops": round(k.ops_per_second, 1),
        "kbs_p50_ms": round(k.quantile(0.5) * 1e3, 1),
        "kbs_p99_ms": round(k.quantile(0.99) * 1e3, 1),
        "bare_ops": round(b.ops_per_second, 1),
        "bare_p50_ms": round(b.quantile(0.5) * 1e3, 1),
        "bare_p99_ms": round(b.quantile(0.99) * 1e3, 1),
        "transactions_per_handshake": round(tx["write"] / k.ops, 2) if tx and k.ops else None,
        "read_transactions_per_handshake": round(tx["read"] / k.ops, 2) if tx and k.ops else None,
        "chain_transactions_per_handshake": round(tx["chain"] / k.ops, 3) if tx and k.ops else None,
        "bare_over_kbs": round(b.ops_per_second / k.ops_per_second, 2) if k.ops else None,
        "kbs_p99_over_p50": round(k.quantile(0.99) / k.quantile(0.5), 2) if k.ops else None,
        "kbs_cpu_ms_per_op": round(kbs.cpu_ms_per_op, 2),
        "bare_cpu_ms_per_op": round(bare.cpu_ms_per_op, 2),
        "cpu_ratio": round(kbs.cpu_ms_per_op / bare.cpu_ms_per_op, 2) if bare.result.ops else None,
        "kbs_client_cpu_share": round(k.cpu_share, 2),
        "kbs_client_cpu_ms_per_op": round(k.cpu_seconds / k.ops * 1e3, 2) if k.ops else None,
        "kbs_client_processes": kbs.client_processes,
        "bare_client_cpu_share": round(b.cpu_share, 2),
        "bare_client_cpu_ms_per_op": round(b.cpu_seconds / b.ops * 1e3, 2) if b.ops else None,
        "bare_client_processes": bare.client_processes,
        "kbs_errors": sum(k.errors.values()),
        "kbs_cpu_shares": kbs.shares(),
        "bare_cpu_shares": bare.shares(),
    }
    if one_worker is not None:
        out["kbs_ops_one_worker"] = round(one_worker.result.ops_per_second, 1)
        out["worker_scaling"] = round(k.ops_per_second / one_worker.result.ops_per_second, 2)
        # Where the cores are too few for N workers to scale, CPU per handshake not rising with N shows the workers
        # do not contend (they share only the database).
        out["kbs_cpu_ms_per_op_one_worker"] = round(one_worker.cpu_ms_per_op, 2)
        out["kbs_cpu_shares_one_worker"] = one_worker.shares()
    return out


RANGED = (
    "kbs_ops",
    "kbs_p99_over_p50",
    "bare_ops",
    "bare_over_kbs",
    "kbs_cpu_ms_per_op",
    "bare_cpu_ms_per_op",
    "cpu_ratio",
    "worker_scaling",
)


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median bare/kbs ratio, with each ranged figure's [min, max] over all the rounds."""
    ordered = sorted(rounds, key=lambda r: r["bare_over_kbs"] if r["bare_over_kbs"] is not None else float("inf"))
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["rounds"] = len(rounds)
    for key in (k for k in RANGED if k in out):
        values = [r[key] for r in rounds if r[key] is not None]
        out[f"{key}_range"] = [min(values), max(values)] if values else None
    return out


def print_table(rows: list[dict[str, Any]], header: str) -> None:
    print(header)
    print(
        f"{'c':>3} | {'kbs ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'bare ops/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'bare/kbs':>8} {'p99/p50':>7} | {'writes/hs':>9} {'reads/hs':>8} {'chain/hs':>8} | {'cpu ms/op kbs':>13} "
        f"{'bare':>6} {'ratio':>6} | {'client cpu':>10}"
    )
    for r in rows:
        scaling = ""
        if "worker_scaling" in r:
            scaling = (
                f" | 1 worker {r['kbs_ops_one_worker']:.1f} ops/s, {r['kbs_cpu_ms_per_op_one_worker']:.2f} cpu ms/op, "
                f"x{r['worker_scaling']}"
            )
        print(
            f"{r['concurrency']:>3} | {r['kbs_ops']:>9.1f} {r['kbs_p50_ms']:>7.1f} {r['kbs_p99_ms']:>7.1f} | "
            f"{r['bare_ops']:>10.1f} {r['bare_p50_ms']:>7.1f} {r['bare_p99_ms']:>7.1f} | "
            f"{r['bare_over_kbs']:>7.2f}x {r['kbs_p99_over_p50']:>7.2f} | {r['transactions_per_handshake']!s:>9} "
            f"{r['read_transactions_per_handshake']!s:>8} {r['chain_transactions_per_handshake']!s:>8} | "
            f"{r['kbs_cpu_ms_per_op']:>13.2f} "
            f"{r['bare_cpu_ms_per_op']:>6.2f} {r['cpu_ratio']!s:>6} | "
            f"{r['kbs_client_cpu_share']:>4.2f}x{r['kbs_client_processes']}" + scaling,
            flush=True,
        )
        shares = [("kbs", r["kbs_cpu_shares"]), ("bare", r["bare_cpu_shares"])]
        if "kbs_cpu_shares_one_worker" in r:
            shares.append(("kbs 1 worker", r["kbs_cpu_shares_one_worker"]))
        print(
            "    cores used: "
            + "; ".join(f"{name} " + ", ".join(f"{k} {v}" for k, v in s.items()) for name, s in shares)
            + f" | client cpu ms/op kbs {r['kbs_client_cpu_ms_per_op']}, bare {r['bare_client_cpu_ms_per_op']}",
            flush=True,
        )
        if r["rounds"] > 1:
            ranged = [(key, r[f"{key}_range"]) for key in RANGED if r.get(f"{key}_range")]
            ranges = ", ".join(f"{key} {lo}-{hi}" for key, (lo, hi) in ranged)
            print(f"    over {r['rounds']} rounds: {ranges}", flush=True)


@contextmanager
def brokers(args: argparse.Namespace, folder: Path) -> Iterator[tuple[Target, Target | None]]:
    config: dict[str, Any] = {"rate_limit": {"auth_per_minute": 0, "attest_per_minute": 0}}
    if args.no_decisions:
        config["decisions"] = {"record": False}
    url, workers = args.database_url, args.workers
    made: list[KbsServer] = []

    def started(server: KbsServer) -> KbsServer:
        made.append(server)  # stopped at the end even if a later one fails to start
        return server.start()

    try:
        servers = [started(KbsServer(folder, config=config, database_url=url, workers=workers))]
        for _ in range(args.replicas - 1):
            servers.append(started(KbsServer(folder, config=config, database_url=url, init=False, workers=workers)))
        single: KbsServer | None = None
        if workers > 1:
            # Same folder, so the same key-encryption key and (SQLite) database.
            single = started(KbsServer(folder, config=config, database_url=url, init=False, workers=1))
        admin = servers[0].admin
        admin.put_resource("default/key/1", SECRET)
        admin.put_reference_value("sample_svn", ["1"])
        admin.set_resource_policy((ROOT / "policies" / "demo_resource_allow_sample.rego").read_text())
        for server in servers + ([single] if single else []):
            pin(server.pid, args.server_cpus)
        counts = args.workers == 1
        database = url.rsplit("/", 1)[-1].split("?")[0] if url and url.startswith("postgresql") else None
        kbs = Target("kbs", [s.url for s in servers], [s.pid for s in servers], True, counts, database)
        yield kbs, (Target("kbs-1", [single.url], [single.pid], True, True, database) if single else None)
    finally:
        for server in made:
            server.admin.close()
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per level and target")
    parser.add_argument("--rounds", type=int, default=1, help="run each level N times: the median round, and ranges")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=list(LEVELS))
    parser.add_argument("--database-url")
    parser.add_argument("--replicas", type=int, default=1, help="broker replicas sharing one database")
    parser.add_argument("--workers", type=int, default=1, help="kbs serve --workers N (the bare app too)")
    cpus: Callable[[str], set[int]] = lambda s: {int(x) for x in s.split(",")}  # noqa: E731
    parser.add_argument("--server-cpus", type=cpus, help="pin the servers to these CPUs, e.g. 0")
    parser.add_argument("--client-cpus", type=cpus, help="pin the load generator to these CPUs, e.g. 1")
    parser.add_argument("--json", action="store_true", help="one JSON object per concurrency level on stdout")
    parser.add_argument(
        "--no-decisions", action="store_true", help="[decisions] record = false: the cost of recording them"
    )
    args = parser.parse_args()
    if args.replicas > 1 and not args.database_url:
        parser.error("--replicas needs a shared --database-url (PostgreSQL)")

    folder = Path(tempfile.mkdtemp(prefix="veritee-bench-"))
    bare_process, bare_url = start_bare(args.workers)
    pin(bare_process.pid, args.server_cpus)
    bare = Target("bare", [bare_url], [bare_process.pid], False, False)
    client_cpus = sorted(args.client_cpus or ())
    database = args.database_url.split("@")[-1] if args.database_url else "SQLite"
    header = (
        f"kbs serve x{args.replicas} replicas, {args.workers} worker(s) each, on {database}; bare FastAPI app on "
        f"uvicorn; {args.seconds:.0f} s per level, median of {args.rounds}; load average {os.getloadavg()[0]:.1f}, "
        f"{os.cpu_count()} cores; server CPUs {sorted(args.server_cpus or ()) or 'any'}, client CPUs "
        f"{client_cpus or 'any'}"
    )
    rows: list[dict[str, Any]] = []
    try:
        with brokers(args, folder) as (kbs, one_worker), ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
            for level in args.levels:
                rounds = []
                for _ in range(args.rounds):
                    k = measure(kbs, level, args.seconds, pool, client_cpus)
                    b = measure(bare, level, args.seconds, pool, client_cpus)
                    single = measure(one_worker, level, args.seconds, pool, client_cpus) if one_worker else None
                    rounds.append(row(level, k, b, single))
                reported = median_round(rounds)
                rows.append(reported)
                if args.json:
                    print(json.dumps(reported), flush=True)
    finally:
        bare_process.terminate()
        bare_process.wait()
    if not args.json:
        print_table(rows, header)
    else:
        print(header, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
