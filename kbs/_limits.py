"""Request-body cap and request timing (ASGI middleware), the client address behind trusted proxies, per-client rate
limits (in-process, or shared by replicas through Redis), and Prometheus counters and histograms."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, Protocol

from .errors import KbsError

__all__ = [
    "BodyLimit",
    "ClientAddress",
    "Limiter",
    "Metrics",
    "RateLimiter",
    "RedisRateLimiter",
    "RequestTimer",
    "build_limiter",
]

log = logging.getLogger("kbs")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, by Content-Length up front or by counting while streaming."""

    def __init__(self, app: App, limit: int, legacy_401: bool = False) -> None:
        self.app = app
        self.limit = limit
        self.legacy_401 = legacy_401

    async def _refuse(self, send: Send) -> None:
        error = KbsError.too_large(f"request body over {self.limit} bytes")
        body = json.dumps(error.body()).encode()
        status = 401 if self.legacy_401 else error.status
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLargeError:
            if not started:
                await self._refuse(send)


class _TooLargeError(Exception):
    pass


class Limiter(Protocol):
    """A per-client request budget: `check` returns, or raises 429 RateLimited carrying Retry-After."""

    async def check(self, bucket: str, client: str) -> None: ...


def _refuse(bucket: str, retry_after: float) -> KbsError:
    error = KbsError.rate_limited(f"too many /{bucket} requests from this client; retry later")
    error.retry_after = max(1, math.ceil(retry_after))
    return error


class RateLimiter:
    """A token bucket per route and client address, in this process (the embedded default; the bound on the table is
    a safety net, not an accounting). `per_minute` maps a bucket name to its rate; 0 or absent disables it."""

    def __init__(self, per_minute: dict[str, int]) -> None:
        self._rates = {name: (rate / 60.0, float(max(rate // 6, 1))) for name, rate in per_minute.items() if rate > 0}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    async def check(self, bucket: str, client: str) -> None:
        self.take(bucket, client)

    def take(self, bucket: str, client: str) -> None:
        if bucket not in self._rates:
            return
        rate, capacity = self._rates[bucket]
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get((bucket, client), (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[(bucket, client)] = (tokens, now)
                raise _refuse(bucket, (1.0 - tokens) / rate)
            self._buckets[(bucket, client)] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()


# The same token bucket as RateLimiter, kept in a Redis hash so every replica draws from one budget. The script runs
# atomically on the server and takes the time from the server's clock, so replicas' clocks need not agree.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """RateLimiter's buckets in Redis (`[limits] redis_url`), shared by every replica. When Redis does not answer the
    request is let through and the failure logged and counted: the limit is a safety net, not an availability risk."""

    def __init__(self, url: str, per_minute: dict[str, int], metrics: Metrics) -> None:
        import redis.asyncio  # noqa: PLC0415 (only brokers configured for Redis pay for the import)

        self._rates = {name: (rate / 60.0, float(max(rate // 6, 1))) for name, rate in per_minute.items() if rate > 0}
        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._script = self._redis.register_script(_BUCKET_SCRIPT)
        self._errors = redis.RedisError
        self._metrics = metrics

    async def check(self, bucket: str, client: str) -> None:
        if bucket not in self._rates:
            return
        rate, capacity = self._rates[bucket]
        try:
            allowed, tokens = await self._script(keys=[f"veritee:rate:{bucket}:{client}"], args=[rate, capacity])
        except (self._errors, OSError) as exc:
            self._metrics.inc("kbs_rate_limit_errors_total")
            log.warning("rate limit store unavailable, request let through: %s", type(exc).__name__)
            return
        if int(allowed) != 1:
            raise _refuse(bucket, (1.0 - float(tokens)) / rate)


def build_limiter(per_minute: dict[str, int], redis_url: str | None, metrics: Metrics) -> Limiter:
    return RedisRateLimiter(redis_url, per_minute, metrics) if redis_url else RateLimiter(per_minute)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """The client's address: the TCP peer, unless the peer is a trusted proxy; then the rightmost hop of `Forwarded`
    (or, without it, `X-Forwarded-For`) that is not itself a trusted proxy. Headers from any other peer are ignored:
    anyone can send them."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: tuple[Network, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = _forwarded_hops(scope.get("headers", ()))
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


def _forwarded_hops(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    forwarded: list[str] = []
    x_forwarded_for: list[str] = []
    for name, value in headers:
        if name == b"forwarded":
            for element in value.decode("latin-1").split(","):
                for pair in element.split(";"):
                    key, _, hop = pair.strip().partition("=")
                    if key.lower() == "for":
                        forwarded.append(_bare_address(hop.strip().strip('"')))
        elif name == b"x-forwarded-for":
            x_forwarded_for += [_bare_address(h.strip()) for h in value.decode("latin-1").split(",") if h.strip()]
    return forwarded or x_forwarded_for


def _bare_address(hop: str) -> str:
    """`[2001:db8::1]:4711` -> `2001:db8::1`, `192.0.2.1:4711` -> `192.0.2.1` (RFC 7239 node syntax)."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


# Latency buckets (seconds): a handshake is milliseconds; an attestation with collateral checks may take a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Counters and histograms in the Prometheus text format."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._counts: Counter[tuple[str, Labels]] = Counter()
        self._buckets = tuple(buckets)
        self._histograms: dict[tuple[str, Labels], tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, **labels: str) -> None:
        with self._lock:
            self._counts[(name, tuple(sorted(labels.items())))] += 1

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            counts, total = self._histograms.setdefault(key, ([0] * (len(self._buckets) + 1), [0.0]))
            counts[bisect_left(self._buckets, value)] += 1
            total[0] += value

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            items = sorted(self._counts.items())
            histograms = sorted((key, (list(c), t[0])) for key, (c, t) in self._histograms.items())
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                lines.append(f"# TYPE {name} counter")
                seen.add(name)
            lines.append(f"{name}{_label_text(labels)} {value}")
        for (name, labels), (counts, total) in histograms:
            if name not in seen:
                lines.append(f"# TYPE {name} histogram")
                seen.add(name)
            running = 0
            for bound, count in zip((*map(str, self._buckets), "+Inf"), counts, strict=True):
                running += count
                lines.append(f"{name}_bucket{_label_text((*labels, ('le', bound)))} {running}")
            lines.append(f"{name}_sum{_label_text(labels)} {total}")
            lines.append(f"{name}_count{_label_text(labels)} {running}")
        return "\n".join(lines) + "\n"


def _label_text(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in labels)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(labels, escaped, strict=True)) + "}"


class RequestTimer:
    """Time every HTTP request into `kbs_request_duration_seconds{method, route, status}`: the route template
    (`/kbs/v0/resource/{path:path}`, never the path a client sent) and the status code answered."""

    def __init__(self, app: App, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                "kbs_request_duration_seconds",
                time.perf_counter() - started,
                method=scope.get("method", ""),
                route=template,
                status=str(status),
            )
