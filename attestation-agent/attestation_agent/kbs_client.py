"""The RCAR client: attest to a KBS (protocol 0.4.0) and fetch resources as JWE, decrypted in the guest.

Each handshake uses a fresh ephemeral EC P-256 key, bound into the evidence through the runtime digest; the EAR
token is reused until shortly before its `exp`, then the agent attests again.

>>> client = KbsClient("http://127.0.0.1:8080")
>>> client.base
'http://127.0.0.1:8080/kbs/v0'
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from kbs.protocol import (
    BASE_PATH,
    PROTOCOL_VERSION,
    expected_report_data,
    parse_resource_uri,
    runtime_digest,
    tls_verify,
)

from .attesters import Attester, detect

__all__ = [
    "BASE_PATH",
    "PROTOCOL_VERSION",
    "RETRY_STATUSES",
    "KbsClient",
    "KbsClientError",
    "attestation_body",
    "check_response",
    "decrypt_resource",
    "parse_resource_uri",
    "tls_verify",
    "token_expiry",
]

TOKEN_SKEW_SECONDS = 10
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class KbsClientError(Exception):
    """The broker refused (with its error detail) or could not be reached after the retries."""

    def __init__(self, message: str, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


@dataclass
class _Attested:
    token: str
    key: ECKey
    expires_at: float


def token_expiry(token: str) -> float:
    """The token's `exp`, read without verification: the guest only uses it to decide when to re-attest."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise KbsClientError("the broker returned a token that is not a JWT with exp") from exc


def check_response(response: httpx.Response, step: str) -> dict[str, Any]:
    """The JSON body of a 200 answer; KbsClientError with the broker's status, error type and detail otherwise."""
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        detail = body.get("detail", response.text[:200]) if isinstance(body, dict) else response.text[:200]
        raise KbsClientError(
            f"{step} refused by the broker (HTTP {response.status_code}): {detail}",
            response.status_code,
            body.get("type") if isinstance(body, dict) else None,
        )
    if not isinstance(body, dict):
        raise KbsClientError(f"{step}: the broker's answer is not a JSON object")
    return body


def attestation_body(attester: Attester, nonce: str, init_data: str | None) -> tuple[dict[str, Any], ECKey]:
    """The /attest request for this challenge nonce: evidence bound to a fresh ephemeral P-256 key (returned with
    it: the broker encrypts resources to that key), carrying the init-data the TEE is already bound to."""
    key = ECKey.generate_key("P-256")
    pubkey = key.as_dict(private=False)
    init = None if init_data is None else {"format": "toml", "body": init_data}
    evidence = attester.evidence(expected_report_data(attester.tee, runtime_digest(nonce, pubkey)))
    body = {
        "init-data": init,
        "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
        "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
    }
    return body, key


def decrypt_resource(body: dict[str, Any], key: ECKey) -> bytes:
    """The plaintext of the broker's flattened JWE resource response, encrypted to the ephemeral key."""
    try:
        compact = ".".join(body[k] for k in ("protected", "encrypted_key", "iv", "ciphertext", "tag"))
        plaintext: bytes = jwe.decrypt_compact(compact, key).plaintext or b""
    except (KeyError, TypeError, JoseError, ValueError) as exc:
        raise KbsClientError(f"the broker's resource response is not a JWE for this key: {exc}") from exc
    return plaintext


class KbsClient:
    def __init__(
        self,
        url: str,
        attester: Attester | None = None,
        *,
        init_data: str | None = None,
        retries: int = 3,
        timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        self.base = url.rstrip("/") + BASE_PATH
        self._attester = attester
        self._init_data = init_data
        self._retries = max(1, retries)
        self._http = httpx.Client(timeout=timeout, verify=tls_verify(verify))
        self._attested: _Attested | None = None
        self._init_data_bound = False  # checked (and, on a TPM, extended) once, before the first attestation

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KbsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def attester(self) -> Attester:
        if self._attester is None:
            self._attester = detect()
        return self._attester

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self._send("POST", path, json=body)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = 0.2
        for attempt in range(self._retries):
            try:
                response = self._http.request(method, self.base + path, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 == self._retries:
                    raise KbsClientError(f"cannot reach the broker at {self.base}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt + 1 == self._retries:
                    return response
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def attest(self) -> str:
        """One full handshake (auth, attest); returns the EAR token and keeps it for resource requests."""
        attester = self.attester
        self._http.cookies.clear()
        challenge = check_response(
            self._post("/auth", {"version": PROTOCOL_VERSION, "tee": attester.tee, "extra-params": ""}), "auth"
        )
        nonce = challenge.get("nonce")
        if not isinstance(nonce, str):
            raise KbsClientError("the broker's challenge has no nonce")
        if self._init_data is not None and not self._init_data_bound:
            from .initdata import InitDataError, bind, parse  # noqa: PLC0415

            try:
                bind(attester, parse(self._init_data))
            except InitDataError as exc:
                raise KbsClientError(f"init-data: {exc}") from exc
            self._init_data_bound = True
        body, key = attestation_body(attester, nonce, self._init_data)
        token = check_response(self._post("/attest", body), "attest").get("token")
        if not isinstance(token, str):
            raise KbsClientError("the broker's attestation response has no token")
        self._attested = _Attested(token=token, key=key, expires_at=token_expiry(token))
        return token

    def get_resource(self, uri: str) -> bytes:
        path = "/".join(parse_resource_uri(uri))
        for attempt in range(2):
            attested = self._attested
            if attested is None or attested.expires_at - TOKEN_SKEW_SECONDS <= time.time():
                self.attest()
                attested = self._attested
            assert attested is not None
            response = self._send("GET", f"/resource/{path}", headers={"Authorization": f"Bearer {attested.token}"})
            if response.status_code == 401 and attempt == 0:
                self._attested = None  # the broker no longer accepts the token (key rotation, restart): re-attest
                continue
            return decrypt_resource(check_response(response, f"resource {path}"), attested.key)
        raise AssertionError("unreachable")
