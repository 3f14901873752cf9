"""Request-body cap (ASGI middleware), per-client rate limiting for /auth, and Prometheus counters."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import KbsError

__all__ = ["BodyLimit", "Metrics", "RateLimiter"]

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


class RateLimiter:
    """A token bucket per client address (per replica; the bound is a safety net, not an accounting)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(max(per_minute // 6, 1))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                raise KbsError.rate_limited("too many /auth requests from this client; retry later")
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()


class Metrics:
    """A few counters in the Prometheus text format."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = threading.Lock()
        self._collectors: list[Callable[[], Counter[tuple[str, tuple[tuple[str, str], ...]]]]] = []

    def collect(self, collector: Callable[[], dict[str, dict[str, int]]], label: str) -> None:
        """Counters kept elsewhere: `collector()` gives {name: {label value: count}}, read at each render."""

        def read() -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
            return Counter(
                {(name, ((label, value),)): n for name, by in collector().items() for value, n in by.items()}
            )

        self._collectors.append(read)

    def inc(self, name: str, **labels: str) -> None:
        with self._lock:
            self._counts[(name, tuple(sorted(labels.items())))] += 1

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            counts = self._counts.copy()
        for read in self._collectors:
            counts.update(read())
        items = sorted(counts.items())
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                lines.append(f"# TYPE {name} counter")
                seen.add(name)
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        return "\n".join(lines) + "\n"
