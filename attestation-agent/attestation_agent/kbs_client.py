"""The RCAR client: attest to a KBS (protocol 0.4.0) and fetch resources as JWE, decrypted in the guest.

It speaks to a trustee KBS as guest-components does: /auth lists the hashes it can bind the runtime data with
(`extra-params.supported-hash-algorithms`), and the challenge's `selected-hash-algorithm` is honoured (SHA-384 when
none is selected; kbs_protocol._hash). The JWE's AAD is the ASCII of `protected` exactly as sent (`_jwe`).

Each handshake uses a fresh ephemeral EC P-256 key, bound into the evidence through the runtime digest; the EAR
token is reused until shortly before its `exp`, then the agent attests again.

Failover: the client takes one broker URL or several (a list, or one string with commas: replicas sharing one
database, where any replica serves any step). When a broker cannot be reached or answers 429/502/503/504, the client
moves to the next URL and tries again after a backoff (0.2 s doubling to at most 5 s, with jitter; at least the
broker's Retry-After, up to 30 s), `retries` attempts in all. A handshake is never resumed half way: a failed /auth
or /attest starts a fresh handshake from /auth (new session, new nonce, new ephemeral key), so a nonce is never
sent twice by choice and a /attest that a dying replica may or may not have committed costs nothing but the new
handshake. A /attest answered 401 `UnAuthorized` (the session is gone: expired, or its nonce already used) also
starts a fresh handshake; a 401 `AttestationFailed` does not (the evidence was judged). Resource GETs are retried
as they are, on any replica: the EAR token is valid at every replica.

>>> client = KbsClient("http://127.0.0.1:8080, http://127.0.0.1:8081")
>>> client.base
'http://127.0.0.1:8080/kbs/v0'
>>> client.brokers
['http://127.0.0.1:8080/kbs/v0', 'http://127.0.0.1:8081/kbs/v0']
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from kbs_protocol import (
    BASE_PATH,
    PROTOCOL_VERSION,
    SESSION_COOKIE,
    Attestation,
    InitData,
    ProtocolError,
    Request,
    RuntimeData,
    TeeEvidence,
    parse_challenge,
    parse_resource_uri,
    parse_response,
    request_extra_params,
    runtime_digest,
    selected_hash_algorithm,
)
from verifier.binding import expected_report_data

from ._errors import KbsClientError
from ._http import HttpClient, Response, TransportError
from ._jwe import EphemeralKey, JweError
from ._retry import Backoff
from .attesters import Attester, detect

__all__ = [
    "BASE_PATH",
    "PROTOCOL_VERSION",
    "RETRY_STATUSES",
    "KbsClient",
    "KbsClientError",
    "attestation_body",
    "auth_body",
    "check_response",
    "decrypt_resource",
    "parse_challenge_nonce",
    "parse_resource_uri",
    "parse_token",
    "token_expiry",
]

T = TypeVar("T")

TOKEN_SKEW_SECONDS = 10
RETRY_STATUSES = frozenset({429, 502, 503, 504})
FIRST_DELAY_SECONDS = 0.2
MAX_DELAY_SECONDS = 5.0


class _Unavailable(Exception):  # noqa: N818 (a condition the retry loop handles, never raised to callers)
    """This broker could not be reached or asked to be retried; another attempt (maybe another replica) may work.
    `unsent`: the request surely never reached a broker (TransportError.unsent)."""

    def __init__(self, message: str, retry_after: float | None = None, *, unsent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unsent = unsent


@dataclass
class _Attested:
    token: str
    key: EphemeralKey
    expires_at: float
    session: str | None  # the broker's session cookie, which stands for the token on resource requests


def resource_headers(token: str, session: str | None) -> dict[str, str]:
    """Authentication of a resource request. The session cookie, as guest-components sends it: the broker holds the
    token of an attested session, and a token whose claims carry a firmware event log (tens of KB) does not fit in a
    request header (uvicorn and nginx stop at 8-16 KiB). A broker that set no cookie gets the token as a Bearer."""
    if session is not None:
        return {"Cookie": f"{SESSION_COOKIE}={session}"}
    return {"Authorization": f"Bearer {token}"}


def token_expiry(token: str) -> float:
    """The token's `exp`, read without verification: the guest only uses it to decide when to re-attest."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise KbsClientError("the broker returned a token that is not a JWT with exp") from exc


def check_response(response: Response, step: str) -> dict[str, Any]:
    """The JSON object of a 200 answer; KbsClientError with the broker's status, error type and detail otherwise."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status != 200:
        detail = body.get("detail", response.text[:200])
        raise KbsClientError(
            f"{step} refused by the broker (HTTP {response.status}): {detail}", response.status, body.get("type")
        )
    return body


def auth_body(tee: str) -> dict[str, Any]:
    """The /auth request: the TEE and, in extra-params, every hash the agent can bind the runtime data with."""
    return Request(tee=tee, version=PROTOCOL_VERSION, extra_params=request_extra_params()).to_dict()


def parse_challenge_nonce(body: dict[str, Any]) -> tuple[str, str]:
    """The challenge's nonce and the hash to bind with (trustee's KBS with Intel Trust Authority may select
    another than SHA-384)."""
    try:
        challenge = parse_challenge(body)
        return challenge.nonce, selected_hash_algorithm(challenge.extra_params)
    except ProtocolError as exc:
        raise KbsClientError(f"the broker's challenge is malformed: {exc}") from exc


def parse_token(body: dict[str, Any]) -> str:
    try:
        return parse_response(body).token
    except ProtocolError as exc:
        raise KbsClientError(f"the broker's attestation response is malformed: {exc}") from exc


def attestation_body(
    attester: Attester, nonce: str, init_data: str | None, algorithm: str = "sha384"
) -> tuple[dict[str, Any], EphemeralKey]:
    """The /attest request for this challenge nonce: evidence bound (with the negotiated hash) to a fresh ephemeral
    P-256 key (returned with it: the broker encrypts resources to that key), carrying the init-data the TEE is
    already bound to."""
    key = EphemeralKey.generate()
    pubkey = key.public_jwk()
    digest = runtime_digest(nonce, pubkey, algorithm=algorithm)
    evidence = attester.evidence(expected_report_data(attester.tee, digest))
    body = Attestation(
        init_data=None if init_data is None else InitData(format="toml", body=init_data),
        runtime_data=RuntimeData(nonce=nonce, tee_pubkey=pubkey),
        tee_evidence=TeeEvidence(primary_evidence=evidence),
    )
    return body.to_dict(), key


def decrypt_resource(body: dict[str, Any], key: EphemeralKey) -> bytes:
    """The plaintext of the broker's flattened JWE resource response, encrypted to the ephemeral key."""
    try:
        return key.decrypt(body)
    except JweError as exc:
        raise KbsClientError(f"the broker's resource response is not a JWE for this key: {exc}") from exc


class KbsClient:
    def __init__(
        self,
        url: str | Sequence[str],
        attester: Attester | None = None,
        *,
        init_data: str | None = None,
        retries: int = 5,
        timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        urls = url.split(",") if isinstance(url, str) else list(url)
        self.brokers = [u.strip().rstrip("/") + BASE_PATH for u in urls if u.strip()]
        if not self.brokers:
            raise KbsClientError("no broker URL given")
        self._attester = attester
        self._init_data = init_data
        self._backoff = Backoff(max(1, retries), FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS, jitter=True)
        self._clients = [HttpClient(base, timeout=timeout, verify=verify) for base in self.brokers]
        self._current = 0
        self._attested: _Attested | None = None
        self._init_data_bound = False  # checked (and, on a TPM, extended) once, before the first attestation
        self.handshakes = 0  # handshakes started, for diagnostics and tests

    @property
    def base(self) -> str:
        """The broker the next request goes to."""
        return self.brokers[self._current]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def __enter__(self) -> KbsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def attester(self) -> Attester:
        if self._attester is None:
            self._attester = detect()
        return self._attester

    def _request(self, method: str, path: str, **kwargs: Any) -> Response:
        """One request to the current broker; _Unavailable when it cannot be reached or asks for a retry."""
        try:
            response = self._clients[self._current].request(method, path, **kwargs)
        except TransportError as exc:
            raise _Unavailable(f"cannot reach the broker at {self.base}: {exc}", unsent=exc.unsent) from exc
        if response.status in RETRY_STATUSES:
            raise _Unavailable(f"the broker at {self.base} answered HTTP {response.status}", response.retry_after)
        return response

    def _with_retries(self, attempt: Callable[[], T]) -> T:
        """`attempt()` until it returns, moving to the next broker and backing off after each _Unavailable."""
        waits = self._backoff.start()
        while True:
            try:
                return attempt()
            except _Unavailable as exc:
                wait = waits.after(exc.retry_after)
                if wait is None:
                    raise KbsClientError(f"{exc} (after {self._backoff.attempts} attempts)") from exc
            self._current = (self._current + 1) % len(self._clients)
            time.sleep(wait)

    def attest(self) -> str:
        """A full handshake (auth, attest), restarted from /auth after a failure; returns the EAR token and keeps it
        for resource requests."""
        return self._with_retries(self._handshake)

    def _handshake(self) -> str:
        attester = self.attester
        client = self._clients[self._current]
        client.cookies.clear()  # a new session: this /auth's cookie goes with this /attest only
        self.handshakes += 1
        challenge = check_response(self._request("POST", "/auth", json_body=auth_body(attester.tee)), "auth")
        nonce, algorithm = parse_challenge_nonce(challenge)
        if self._init_data is not None and not self._init_data_bound:
            from .initdata import InitDataError, bind, parse  # noqa: PLC0415

            try:
                bind(attester, parse(self._init_data))
            except InitDataError as exc:
                raise KbsClientError(f"init-data: {exc}") from exc
            self._init_data_bound = True
        body, key = attestation_body(attester, nonce, self._init_data, algorithm)
        response = self._request("POST", "/attest", json_body=body)
        try:
            token = parse_token(check_response(response, "attest"))
        except KbsClientError as exc:
            if exc.session_lost:
                raise _Unavailable(f"the broker at {self.base} lost the session: {exc}") from exc
            raise
        session = client.cookies.get(SESSION_COOKIE)
        self._attested = _Attested(token=token, key=key, expires_at=token_expiry(token), session=session)
        return token

    def get_resource(self, uri: str) -> bytes:
        path = "/".join(parse_resource_uri(uri))
        for attempt in range(2):
            attested = self._attested
            if attested is None or attested.expires_at - TOKEN_SKEW_SECONDS <= time.time():
                self.attest()
                attested = self._attested
            assert attested is not None
            headers = resource_headers(attested.token, attested.session)
            response = self._with_retries(partial(self._request, "GET", f"/resource/{path}", headers=headers))
            if response.status == 401 and attempt == 0:
                self._attested = None  # the broker no longer accepts the token (key rotation, restart): re-attest
                continue
            return self._decrypt(check_response(response, f"resource {path}"), attested.key)
        raise AssertionError("unreachable")

    @staticmethod
    def _decrypt(body: dict[str, Any], key: EphemeralKey) -> bytes:
        return decrypt_resource(body, key)
