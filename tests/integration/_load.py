"""A load generator for the RCAR handshake (POST /auth, POST /attest, GET /resource), shared by the load test and
`bench/kbs_handshake.py`.

The generator must cost a small fraction of the server's CPU per handshake, or on a small machine it competes with
the server for the cores and its own cost is what a benchmark measures. So each client is an asyncio task with its
own keep-alive connection on aiohttp's client (an HTTP/1.1 parser in C: about 0.2 ms of client CPU per request,
where httpx's layers took 1.5 ms) and its own P-256 key, made once: the protocol binds every attestation to a fresh
nonce *and* the key, so one key may serve many handshakes. The session cookie is carried by hand (the one cookie
/auth sets, sent back on the next two requests) rather than through a cookie jar. The released JWE is still
decrypted with joserfc and compared with the provisioned secret (0.2 ms). A run is bounded by a handshake count, a
time, or both; errors are counted, not raised, so a run under load reports them all. The generator measures its
own CPU time over the handshakes, so a benchmark can tell when the client, not the server, is the bottleneck.

    result = asyncio.run(run_load(["http://127.0.0.1:8080"], concurrency=16, seconds=5, secret=b"..."))
    result.ops_per_second, result.quantile(0.99), result.errors
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from joserfc import jwe
from joserfc.jwk import ECKey
from sqlalchemy import text

from kbs.storage import Store
from kbs_protocol import runtime_digest
from verifier.binding import expected_report_data

__all__ = [
    "AUTH_BODY",
    "JWE_FIELDS",
    "RESOURCE",
    "LoadResult",
    "SoakReport",
    "attest_body",
    "run_load",
    "session_states",
    "soak",
]

RESOURCE = "default/key/1"
AUTH_BODY = json.dumps({"version": "0.4.0", "tee": "sample", "extra-params": ""}).encode()
_JSON = {"Content-Type": "application/json"}
JWE_FIELDS = ("protected", "encrypted_key", "iv", "ciphertext", "tag")


@dataclass
class LoadResult:
    ops: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_share(self) -> float:
        """The generator's CPU time over the wall time: 1.0 is one core saturated."""
        return self.cpu_seconds / self.elapsed if self.elapsed else 0.0

    def quantile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100)[round(q * 100) - 1]

    def merge(self, other: LoadResult) -> LoadResult:
        """Two generators' results over the same interval (e.g. two client processes)."""
        return LoadResult(
            ops=self.ops + other.ops,
            elapsed=max(self.elapsed, other.elapsed),
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
            latencies=self.latencies + other.latencies,
            errors=self.errors + other.errors,
        )


def attest_body(nonce: str, pubkey: Mapping[str, Any], real: bool) -> bytes:
    """The /attest request of a sample-TEE guest: evidence bound to `nonce` and `pubkey` (SVN 1), or, for the bare
    app (`real` false), the same shape with empty evidence."""
    evidence: dict[str, str] = {}
    if real:
        report_data = expected_report_data("sample", runtime_digest(nonce, pubkey))
        evidence = {"svn": "1", "report_data": base64.b64encode(report_data).decode()}
    body = {
        "init-data": None,
        "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
        "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
    }
    return json.dumps(body).encode()


class _Client:
    def __init__(self, http: aiohttp.ClientSession, real: bool, secret: bytes | None) -> None:
        self.http = http
        self.real = real
        self.secret = secret
        self.key = ECKey.generate_key("P-256") if real else None
        self.pubkey = self.key.as_dict(private=False) if self.key is not None else {}

    async def handshake(self) -> None:
        async with self.http.post("/kbs/v0/auth", data=AUTH_BODY, headers=_JSON) as challenge:
            challenge.raise_for_status()
            nonce = (await challenge.json())["nonce"]
            session = {"Cookie": "; ".join(f"{c.key}={c.value}" for c in challenge.cookies.values())}
        body = attest_body(nonce, self.pubkey, self.real)
        async with self.http.post("/kbs/v0/attest", data=body, headers=_JSON | session) as attested:
            attested.raise_for_status()
            await attested.read()
        async with self.http.get(f"/kbs/v0/resource/{RESOURCE}", headers=session) as response:
            response.raise_for_status()
            parts = await response.json()
        if self.key is not None:
            plaintext = jwe.decrypt_compact(".".join(parts[k] for k in JWE_FIELDS), self.key).plaintext
            if self.secret is not None and plaintext != self.secret:
                raise ValueError("the released resource is not the provisioned secret")


async def run_load(
    urls: list[str],
    concurrency: int,
    *,
    seconds: float | None = None,
    total: int | None = None,
    real: bool = True,
    secret: bytes | None = None,
    timeout: float = 60.0,
) -> LoadResult:
    """`concurrency` clients (spread over `urls`) doing handshakes until `total` are started or `seconds` pass."""
    if seconds is None and total is None:
        raise ValueError("a load run needs a handshake count, a time, or both")
    result = LoadResult()
    tickets = itertools.count()
    limit = aiohttp.ClientTimeout(total=timeout)
    sessions = [
        aiohttp.ClientSession(
            urls[index % len(urls)],
            connector=aiohttp.TCPConnector(limit=1),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=limit,
        )
        for index in range(concurrency)
    ]
    clients = [_Client(http, real, secret) for http in sessions]
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")

    async def client(guest: _Client) -> None:
        while time.perf_counter() < deadline and (total is None or next(tickets) < total):
            began = time.perf_counter()
            try:
                await guest.handshake()
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                result.errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                continue
            result.latencies.append(time.perf_counter() - began)
            result.ops += 1

    try:
        cpu = time.process_time()
        await asyncio.gather(*(client(guest) for guest in clients))
        result.cpu_seconds = time.process_time() - cpu
        result.elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(http.close() for http in sessions))
    return result


# -- the load test's verdict: errors, leaked sessions, the session table swept back ---------------------------------


def session_states(database_url: str) -> Counter[str]:
    """Rows of the broker's session table by state (challenged, consumed, attested), read straight from the DB."""
    store = Store(database_url, threads=1)
    try:
        with store.read() as reads:
            rows = reads.connection.execute(text("SELECT state, count(*) FROM kbs_session GROUP BY state")).all()
        return Counter({str(state): int(n) for state, n in rows})
    finally:
        store.engine.dispose()


@dataclass
class SoakReport:
    result: LoadResult
    start_sessions: int
    after_load: Counter[str]
    after_sweep: int
    sweep_seconds: float

    @property
    def leaked(self) -> int:
        """Sessions the load left in a state a finished handshake never leaves (all of them end attested)."""
        return sum(n for state, n in self.after_load.items() if state != "attested")


def soak(
    url: str,
    database_url: str,
    *,
    clients: int,
    handshakes: int,
    seconds: float,
    sweep_within: float,
    secret: bytes,
) -> SoakReport:
    """`handshakes` handshakes by `clients` clients (bounded by `seconds`), then wait (at most `sweep_within`
    seconds) for the broker's sweeper to bring the session table back to its size before the load."""
    start = sum(session_states(database_url).values())
    result = asyncio.run(run_load([url], clients, total=handshakes, seconds=seconds, secret=secret))
    after_load = session_states(database_url)
    began = time.monotonic()
    remaining = sum(after_load.values())
    while remaining > start and time.monotonic() - began < sweep_within:
        time.sleep(0.5)
        remaining = sum(session_states(database_url).values())
    return SoakReport(result, start, after_load, remaining, time.monotonic() - began)
