"""KBS handshake benchmark: complete RCAR handshakes + resource fetches per second, p50/p99 latency, at
concurrency 1, 16 and 64, against a real `kbs serve` (SQLite, or PostgreSQL with --database-url) and against a
bare FastAPI app with the same three routes served the same way, in the same run.

    .venv/bin/python bench/kbs_handshake.py [--seconds 5] [--database-url postgresql://...] [--replicas 1|2]

One operation = POST /auth, POST /attest (sample evidence bound to a fresh P-256 key), GET /resource (JWE,
decrypted by the client). The bare app answers the same three requests with fixed JSON; its client skips the
evidence and decryption work. The ratio is bare ops/s over broker ops/s (how many times slower the real thing is).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from joserfc import jwe
from joserfc.jwk import ECKey

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

from kbs_protocol import runtime_digest  # noqa: E402
from tests.integration._kbs_server import KbsServer, free_port  # noqa: E402
from verifier.binding import expected_report_data  # noqa: E402

SECRET = os.urandom(32)
LEVELS = (1, 16, 64)


async def handshake(client: httpx.AsyncClient, real: bool) -> None:
    client.cookies.clear()
    challenge = await client.post("/kbs/v0/auth", json={"version": "0.4.0", "tee": "sample", "extra-params": ""})
    challenge.raise_for_status()
    nonce = challenge.json()["nonce"]
    if real:
        key = ECKey.generate_key("P-256")
        pubkey = key.as_dict(private=False)
        report_data = expected_report_data("sample", runtime_digest(nonce, pubkey))
        evidence = {"svn": "1", "report_data": base64.b64encode(report_data).decode()}
    else:
        pubkey, evidence = {}, {}
    body = {
        "init-data": None,
        "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
        "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
    }
    (await client.post("/kbs/v0/attest", json=body)).raise_for_status()
    response = await client.get("/kbs/v0/resource/default/key/1")
    response.raise_for_status()
    if real:
        parts = response.json()
        compact = ".".join(parts[k] for k in ("protected", "encrypted_key", "iv", "ciphertext", "tag"))
        assert jwe.decrypt_compact(compact, key).plaintext == SECRET


async def load(urls: list[str], concurrency: int, seconds: float, real: bool) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(base_url=urls[index % len(urls)], limits=limits, timeout=60) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await handshake(client, real)
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_bare_app.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("bare app did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url")
    parser.add_argument("--replicas", type=int, default=1, help="broker replicas sharing one database (PostgreSQL)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="veritee-bench-"))
    config = {"rate_limit": {"auth_per_minute": 0}}
    servers = [KbsServer(folder, config=config, database_url=args.database_url).start()]
    for _ in range(args.replicas - 1):
        servers.append(KbsServer(folder, config=config, database_url=args.database_url, init=False).start())
    admin = servers[0].admin
    admin.put_resource("default/key/1", SECRET)
    admin.put_reference_value("sample_svn", ["1"])
    admin.set_resource_policy((ROOT / "policies" / "demo_resource_allow_sample.rego").read_text())
    bare, bare_url = start_bare()
    database = args.database_url.split("@")[-1] if args.database_url else "SQLite"
    print(f"kbs serve x{args.replicas} on {database}; bare FastAPI app on uvicorn; {args.seconds:.0f} s per level")
    print(
        f"{'concurrency':>11} | {'kbs ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'bare ops/s':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} | {'bare/kbs':>8}"
    )
    try:
        for level in LEVELS:
            kbs_rate, kbs_lat = asyncio.run(load([s.url for s in servers], level, args.seconds, real=True))
            bare_rate, bare_lat = asyncio.run(load([bare_url], level, args.seconds, real=False))
            print(
                f"{level:>11} | {kbs_rate:>9.1f} {quantile(kbs_lat, 0.5) * 1e3:>7.1f} "
                f"{quantile(kbs_lat, 0.99) * 1e3:>7.1f} | {bare_rate:>10.1f} {quantile(bare_lat, 0.5) * 1e3:>7.1f} "
                f"{quantile(bare_lat, 0.99) * 1e3:>7.1f} | {bare_rate / kbs_rate:>7.1f}x",
                flush=True,
            )
    finally:
        bare.terminate()
        for server in servers:
            server.stop()
            server.admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
