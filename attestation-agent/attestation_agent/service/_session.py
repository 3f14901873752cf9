"""The service's one KBS session: attest once, reuse the token for every resource until shortly before it expires.

- A valid token (its `exp` more than `refresh_margin` seconds away) is reused as it is.
- Otherwise the next request starts one handshake (auth, evidence, attest) and every request that arrives while
  it runs awaits the same one: N concurrent requests on an expired token cause one attestation.
- A resource request the broker answers 401 (token expired early, signing key rotated, broker database reset)
  drops that token, if it is still the current one, and is retried once with a fresh attestation.
- Transport failures and 429/502/503/504 are retried with a short backoff; after that the caller gets
  `KbsUnavailable` (the route answers 503) and the next request tries again: nothing is cached from a failure.

Handshakes and resource fetches use separate HTTP clients, so a session cookie of a handshake in progress is
never sent with a resource request (those carry the token as a bearer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from joserfc.jwk import ECKey

from ..attesters import Attester
from ..kbs_client import (
    BASE_PATH,
    PROTOCOL_VERSION,
    RETRY_STATUSES,
    KbsClientError,
    attestation_body,
    check_response,
    decrypt_resource,
    tls_verify,
    token_expiry,
)

__all__ = ["Attested", "KbsSession", "KbsUnavailable"]

T = TypeVar("T")

REFRESH_MARGIN_SECONDS = 10.0
RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8)
# Resource requests in flight at the broker at once; more wait here. One guest is one client: a broker answers
# a few concurrent requests from it faster than many (measured on kbs serve: throughput peaks near 4 and halves
# by 16), so the agent queues rather than pile up 16 workloads' fetches on it.
MAX_KBS_IN_FLIGHT = 4


class KbsUnavailable(Exception):  # noqa: N818 (named for the condition, as KbsClientError's sibling)
    """The broker could not be reached, or answered 429/5xx, after the retries."""


@dataclass(frozen=True)
class Attested:
    token: str
    key: ECKey  # the ephemeral key bound into the evidence; resources come encrypted to it
    expires_at: float


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
        self.base = url.rstrip("/") + BASE_PATH
        self._attester = attester
        self._device = device
        self._init_data = init_data
        self._margin = refresh_margin
        self._clock = clock
        tls = tls_verify(verify)
        self._handshakes = httpx.AsyncClient(timeout=timeout, verify=tls)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self._resources = httpx.AsyncClient(timeout=timeout, verify=tls, limits=limits)
        self._attested: Attested | None = None
        self._pending: asyncio.Future[Attested] | None = None
        self._in_flight = asyncio.Semaphore(MAX_KBS_IN_FLIGHT)
        self.attestations = 0  # handshakes completed, for /info-style diagnostics and tests

    async def aclose(self) -> None:
        await self._handshakes.aclose()
        await self._resources.aclose()

    async def _on_device(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking TEE-device call on the device executor (one thread: devices are not re-entrant)."""
        return await asyncio.get_running_loop().run_in_executor(self._device, fn, *args)

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

    async def _send(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for delay in (*RETRY_DELAYS, None):
            try:
                response = await client.request(method, self.base + path, **kwargs)
            except httpx.TransportError as exc:
                if delay is None:
                    raise KbsUnavailable(f"the KBS at {self.base} is unreachable: {exc or type(exc).__name__}") from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                if delay is None:
                    raise KbsUnavailable(f"the KBS at {self.base} answered HTTP {response.status_code}; retry later")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attest(self) -> Attested:
        tee = self._attester.tee
        auth = await self._send(
            self._handshakes, "POST", "/auth", json={"version": PROTOCOL_VERSION, "tee": tee, "extra-params": ""}
        )
        self._handshakes.cookies.clear()  # the session cookie goes with this handshake's /attest only
        nonce = check_response(auth, "auth").get("nonce")
        session = auth.cookies.get("kbs-session-id")
        if not isinstance(nonce, str) or session is None:
            raise KbsClientError("the broker's challenge has no nonce or no session cookie", 502)
        body, key = await self._on_device(attestation_body, self._attester, nonce, self._init_data)
        attest = await self._send(
            self._handshakes, "POST", "/attest", json=body, headers={"Cookie": f"kbs-session-id={session}"}
        )
        token = check_response(attest, "attest").get("token")
        if not isinstance(token, str):
            raise KbsClientError("the broker's attestation response has no token", 502)
        self.attestations += 1
        return Attested(token=token, key=key, expires_at=token_expiry(token))

    async def resource(self, repo: str, kind: str, tag: str) -> bytes:
        """The plaintext of kbs:///repo/kind/tag (segments already checked by the caller)."""
        path = f"/resource/{repo}/{kind}/{tag}"
        for attempt in range(2):
            attested = await self.token()
            async with self._in_flight:
                response = await self._send(
                    self._resources, "GET", path, headers={"Authorization": f"Bearer {attested.token}"}
                )
            if response.status_code == 401 and attempt == 0:
                self.forget(attested)
                continue
            return decrypt_resource(check_response(response, f"resource {repo}/{kind}/{tag}"), attested.key)
        raise AssertionError("unreachable")
