"""Agent service benchmark: secrets fetched per second through `attestation-agent serve` (one attestation, the
token reused) against one `attestation-agent get-resource` process per secret, same broker, same run.

    .venv/bin/python bench/agent_service.py [--seconds 5] [--rounds 3] [--cli-runs 8]

The broker is a real `kbs serve` (SQLite, rate limit off) holding 16 secrets; both sides fetch them in turn and
check every byte. The CLI side runs its processes one after another (a workload asking for one secret at a time);
the service side is measured with 1 and with 16 concurrent clients, each on its own keep-alive connection.
Each figure is the best of --rounds. Printed: fetches/s, p50/p99 latency, the service/CLI ratio (target >= 20x)
and p99/p50 at 16 clients (target < 5x), and how many attestations the broker saw during the service runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

from tests.conftest import cli_env  # noqa: E402
from tests.integration._agent_service import AgentService  # noqa: E402
from tests.integration._kbs_server import KbsServer  # noqa: E402

SECRETS = {f"default/key/{i}": os.urandom(32) for i in range(16)}
PATHS = sorted(SECRETS)


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def cli_round(url: str, runs: int, env: dict[str, str]) -> tuple[float, list[float]]:
    code = "import sys; from attestation_agent.cli import main; sys.exit(main())"
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(runs):
        path = PATHS[i % len(PATHS)]
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, "get-resource", "--kbs", url, f"kbs:///{path}"],
            capture_output=True,
            env=cli_env(env),
            check=False,
        )
        latencies.append(time.perf_counter() - began)
        if done.returncode != 0 or done.stdout != SECRETS[path]:
            raise SystemExit(f"get-resource failed: {done.stderr.decode()}")
    return runs / (time.perf_counter() - start), latencies


async def service_round(url: str, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            i = index
            while time.perf_counter() < deadline:
                path = PATHS[i % len(PATHS)]
                began = time.perf_counter()
                response = await client.get(f"/cdh/resource/{path}")
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200 or response.content != SECRETS[path]:
                    raise SystemExit(f"service fetch failed: {response.status_code} {response.text[:200]}")
                i += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return len(latencies) / (time.perf_counter() - start), latencies


def best(rounds: list[tuple[float, list[float]]]) -> tuple[float, list[float]]:
    return max(rounds, key=lambda r: r[0])


def attestations(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    match = re.search(r'^kbs_attest_total\{outcome="token"\} (\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each service round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cli-runs", type=int, default=8, help="get-resource processes per CLI round")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="veritee-bench-agent-"))
    env = {"VERITEE_SYSROOT": str(folder / "no-tee")}  # the sample TEE on both sides
    with KbsServer(folder / "kbs", config={"rate_limit": {"auth_per_minute": 0}}) as server:
        for path, value in SECRETS.items():
            server.admin.put_resource(path, value)
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy((ROOT / "policies" / "demo_resource_allow_sample.rego").read_text())

        cli = best([cli_round(server.url, args.cli_runs, env) for _ in range(args.rounds)])
        before = attestations(server.url)
        with AgentService(server.url, folder) as agent:
            one = best([asyncio.run(service_round(agent.url, 1, args.seconds)) for _ in range(args.rounds)])
            sixteen = best([asyncio.run(service_round(agent.url, 16, args.seconds)) for _ in range(args.rounds)])
        seen = attestations(server.url) - before

    cores = os.cpu_count()
    print(f"kbs serve (SQLite) and the sample TEE; best of {args.rounds} rounds; shared machine ({cores} cores)")
    print(f"{'':>28} | {'fetches/s':>9} {'p50 ms':>8} {'p99 ms':>8} | {'vs CLI':>7}")
    rows = [("CLI get-resource (1 by 1)", cli), ("serve, 1 client", one), ("serve, 16 clients", sixteen)]
    for name, (rate, latencies) in rows:
        print(
            f"{name:>28} | {rate:>9.1f} {quantile(latencies, 0.5) * 1e3:>8.1f} "
            f"{quantile(latencies, 0.99) * 1e3:>8.1f} | {rate / cli[0]:>6.1f}x"
        )
    tail = quantile(sixteen[1], 0.99) / quantile(sixteen[1], 0.5)
    print(f"serve at 16 clients: {sixteen[0] / cli[0]:.1f}x the CLI's rate (target >= 20x); p99/p50 {tail:.1f}x (< 5x)")
    print(f"attestations at the broker during {2 * args.rounds} service rounds: {seen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
