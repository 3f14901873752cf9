"""The service's one KBS session: attest once, reuse the token for every resource until shortly before it expires.

- A valid token (its `exp` more than `refresh_margin` seconds away) is reused as it is.
- Otherwise the next request starts one handshake (auth, evidence, attest) and every request that arrives while
  it runs awaits the same one: N concurrent requests on an expired token cause one attestation.
- A resource request the broker answers 401 (token expired early, signing key rotated, broker database reset)
  drops that token, if it is still the current one, and is retried once with a fresh attestation.
- Transport failures and 429/502/503/504 are retried with a short backoff; after that the caller gets
  `KbsUnavailable` (the route answers 503) and the next request tries again: nothing is cached from a failure.
  A handshake is retried whole, from /auth (new session, nonce and key), never by sending /attest again: a broker
  (or a replica behind a load balancer) that failed mid-/attest may have consumed the nonce. A /attest answered 401
  `UnAuthorized` (the session is gone) is retried the same way.
- Several broker URLs (comma-separated: replicas on one database) are tried in turn: after a failure the next try
  goes to the next URL, for handshakes and resource requests alike (any replica holds the session).

HTTP is the agent's standard-library client (`attestation_agent._http`, one kept-alive connection each), run on a
small thread pool: per broker, one client for handshakes and MAX_KBS_IN_FLIGHT clients for resources (each request
names the attested session itself), handed out from a queue, so that at most that many resource requests are at a
broker at once and the rest wait here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kbs_protocol import SESSION_COOKIE

from .._http import HttpClient, Response, TransportError
from .._jwe import EphemeralKey
from .._retry import Backoff
from ..attesters import Attester
from ..kbs_client import (
    BASE_PATH,
    RETRY_STATUSES,
    KbsClientError,
    attestation_body,
    auth_body,
    check_response,
    decrypt_resource,
    parse_challenge_nonce,
    parse_token,
    resource_headers,
    token_expiry,
)

__all__ = ["Attested", "KbsSession", "KbsUnavailable"]

T = TypeVar("T")

REFRESH_MARGIN_SECONDS = 10.0
RETRIES = Backoff(attempts=5, first=0.1, most=0.8)  # waits of 0.1, 0.2, 0.4 and 0.8 s: a guest's workload is waiting
# Resource requests in flight at the broker at once; more wait here. One guest is one client: a broker answers
# a few concurrent requests from it faster than many (measured on kbs serve: throughput peaks near 4 and halves
# by 16), so the agent queues rather than pile up 16 workloads' fetches on it.
MAX_KBS_IN_FLIGHT = 4


class KbsUnavailable(Exception):  # noqa: N818 (named for the condition, as KbsClientError's sibling)
    """The broker could not be reached, or answered 429/5xx, after the retries."""


@dataclass(frozen=True)
class Attested:
    token: str
    key: EphemeralKey  # the ephemeral key bound into the evidence; resources come encrypted to it
    expires_at: float
    session: str | None = None  # the broker's session cookie (see kbs_client.resource_headers)


class KbsSession:
    def __init__(
        self,
        url: str,
        attester: Attester,
        device: Executor,
        *,
        init_data: str | None = None,
        verify: bool | str = True,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bases = [u.strip().rstrip("/") + BASE_PATH for u in url.split(",") if u.strip()] or [BASE_PATH]
        self._attester = attester
        self._device = device
        self._init_data = init_data
        self._margin = refresh_margin
        self._clock = clock
        self._network = ThreadPoolExecutor(max_workers=MAX_KBS_IN_FLIGHT + 1, thread_name_prefix="kbs-http")
        self._brokers = [_Broker.open(base, timeout, verify) for base in bases]
        self._current = 0
        self._attested: Attested | None = None
        self._pending: asyncio.Future[Attested] | None = None
        self.attestations = 0  # handshakes completed, for diagnostics and tests

    @property
    def base(self) -> str:
        """The broker the next request goes to."""
        return self._brokers[self._current].base

    def _next(self, failed: _Broker) -> None:
        """Move on from a broker that failed (unless a concurrent request already has)."""
        if self._brokers[self._current] is failed:
            self._current = (self._current + 1) % len(self._brokers)

    async def aclose(self) -> None:
        for broker in self._brokers:
            for client in (broker.handshakes, *broker.clients):
                client.close()
        self._network.shutdown(wait=False)

    async def _run(self, executor: Executor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def token(self) -> Attested:
        """The current token, or the one the single in-flight handshake produces."""
        current = self._attested
        if current is not None and current.expires_at - self._margin > self._clock():
            return current
        if self._pending is None:
            pending = asyncio.ensure_future(self._attest())
            self._pending = pending
            pending.add_done_callback(self._handshake_done)
        return await asyncio.shield(self._pending)

    def _handshake_done(self, future: asyncio.Future[Attested]) -> None:
        self._pending = None
        if not future.cancelled() and future.exception() is None:
            self._attested = future.result()

    def forget(self, attested: Attested) -> None:
        """Drop a token the broker refused, unless another request has already replaced it."""
        if self._attested is attested:
            self._attested = None

    def forget_current(self) -> None:
        """Drop the current token (the TEE's state changed); a handshake in flight may still set a new one."""
        self._attested = None

    async def _once(
        self,
        broker: _Broker,
        client: HttpClient,
        method: str,
        path: str,
        *,
        json_body: object = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request; KbsUnavailable when the broker cannot be reached or asks for a retry."""
        try:
            response = await self._run(self._network, _request, client, method, path, json_body, headers)
        except TransportError as exc:
            raise KbsUnavailable(f"the KBS at {broker.base} is unreachable: {exc}") from exc
        if response.status in RETRY_STATUSES:
            raise KbsUnavailable(f"the KBS at {broker.base} answered HTTP {response.status}; retry later")
        return response

    async def _retrying(self, attempt: Callable[[_Broker], Awaitable[T]]) -> T:
        """`attempt(broker)` until it returns, on the next broker and after a backoff after each KbsUnavailable."""
        waits = RETRIES.start()
        while True:
            broker = self._brokers[self._current]
            try:
                return await attempt(broker)
            except KbsUnavailable:
                wait = waits.after()
                if wait is None:
                    raise
                self._next(broker)
            await asyncio.sleep(wait)

    async def _attest(self) -> Attested:
        return await self._retrying(self._handshake)

    async def _handshake(self, broker: _Broker) -> Attested:
        client = broker.handshakes
        client.cookies.clear()  # a fresh session: the cookie of this /auth goes with this /attest only
        auth = auth_body(self._attester.tee)
        challenge = check_response(await self._once(broker, client, "POST", "/auth", json_body=auth), "auth")
        nonce, algorithm = parse_challenge_nonce(challenge)
        body, key = await self._run(self._device, attestation_body, self._attester, nonce, self._init_data, algorithm)
        answer = await self._once(broker, client, "POST", "/attest", json_body=body)
        try:
            token = parse_token(check_response(answer, "attest"))
        except KbsClientError as exc:
            if exc.session_lost:
                raise KbsUnavailable(f"the KBS at {broker.base} lost the session: {exc}") from exc
            raise
        self.attestations += 1
        session = client.cookies.get(SESSION_COOKIE)
        return Attested(token=token, key=key, expires_at=token_expiry(token), session=session)

    async def _fetch(self, path: str, headers: dict[str, str]) -> Response:
        """A resource GET, retried as it is (it may be sent twice), on the next broker after a failure."""

        async def get(broker: _Broker) -> Response:
            client = await broker.resources.get()
            try:
                return await self._once(broker, client, "GET", path, headers=headers)
            finally:
                broker.resources.put_nowait(client)

        return await self._retrying(get)

    async def resource(self, repo: str, kind: str, tag: str) -> bytes:
        """The plaintext of kbs:///repo/kind/tag (segments already checked by the caller)."""
        path = f"/resource/{repo}/{kind}/{tag}"
        for attempt in range(2):
            attested = await self.token()
            response = await self._fetch(path, resource_headers(attested.token, attested.session))
            if response.status == 401 and attempt == 0:
                self.forget(attested)
                continue
            return decrypt_resource(check_response(response, f"resource {repo}/{kind}/{tag}"), attested.key)
        raise AssertionError("unreachable")


@dataclass
class _Broker:
    """One broker (replica): a client for handshakes, and MAX_KBS_IN_FLIGHT for resources handed out from a queue."""

    base: str
    handshakes: HttpClient
    clients: list[HttpClient]
    resources: asyncio.Queue[HttpClient]

    @classmethod
    def open(cls, base: str, timeout: float, verify: bool | str) -> _Broker:
        clients = [HttpClient(base, timeout=timeout, verify=verify) for _ in range(MAX_KBS_IN_FLIGHT)]
        resources: asyncio.Queue[HttpClient] = asyncio.Queue()
        for client in clients:
            resources.put_nowait(client)
        return cls(base, HttpClient(base, timeout=timeout, verify=verify), clients, resources)


def _request(client: HttpClient, method: str, path: str, json_body: object, headers: dict[str, str] | None) -> Response:
    return client.request(method, path, json_body=json_body, headers=headers)
