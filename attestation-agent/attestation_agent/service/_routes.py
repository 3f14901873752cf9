"""guest-components' api-server-rest surface (its `openapi/api.json` and `src/router.rs`), served by the agent.

    GET  /info                                   {"version", "tee", "additional_tees", "feature"}
    GET  /aa/token?token_type=kbs                {"token", "tee_keypair"} (the EAR token and its PEM key)
    GET  /aa/evidence?runtime_data=D[&encoding=base64]      evidence JSON bound to D (at most 64 bytes)
    GET  /aa/additional-evidence?runtime_data=D[&encoding=base64]   {"<device>": evidence}, {} with none
    POST /aa/aael {"domain","operation","content"}          {"success": "true"} once measured and logged
    GET  /cdh/resource/<repo>/<type>/<tag>       the secret's bytes

Status codes as api-server-rest's: 400 a missing or bad parameter, 403 a non-local client or a KBS refusal
(attestation or resource policy), 404 an unknown path or resource, 405 a known path with another method (with
`Allow`). Veritee adds 503 while the KBS is unreachable, 502 for a KBS answer it cannot use, and 414/413 for
targets and bodies over the limits. Bodies of errors are one line of text saying what was wrong.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from urllib.parse import parse_qsl

from ..attesters import Attester, AttesterError
from ..kbs_client import KbsClientError
from ._http import Request, Response, text_response
from ._session import KbsSession, KbsUnavailable

__all__ = ["MAX_QUERY", "Api", "Measure"]

MAX_QUERY = 2048
TOKEN_TYPE = "kbs"  # noqa: S105 (the one token type: a KBS EAR token, not a credential)
MAX_QUERY_FIELDS = 8
MAX_RUNTIME_DATA = 64
RESOURCE_PREFIX = "/cdh/resource/"
RESOURCE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # docs/protocol.md, as the broker checks them
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*")
OCTETS = "application/octet-stream"
JSON = "application/json"

# domain, operation, content -> None once the event is measured and logged; raises ValueError for bad fields.
Measure = Callable[[str, str, str], Awaitable[None]]


class _BadRequest(Exception):  # noqa: N818 (carries the 400 message)
    pass


def _query(request: Request) -> dict[str, str]:
    try:
        return dict(parse_qsl(request.query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS))
    except ValueError:
        raise _BadRequest(f"the query has more than {MAX_QUERY_FIELDS} fields") from None


def _runtime_data(params: dict[str, str]) -> bytes:
    """api-server-rest's decode_runtime_data: raw UTF-8 by default, URL-safe base64 without padding on request."""
    value = params.get("runtime_data")
    if value is None:
        raise _BadRequest("runtime_data is required")
    encoding = params.get("encoding")
    if encoding is None:
        data = value.encode()
    elif encoding == "base64":
        if not _URLSAFE_B64.fullmatch(value) or len(value) % 4 == 1:
            raise _BadRequest("runtime_data is not URL-safe base64 without padding (encoding=base64)")
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    else:
        raise _BadRequest(f"encoding {encoding!r} is not supported; expected base64 or none")
    if len(data) > MAX_RUNTIME_DATA:
        raise _BadRequest(f"runtime_data is {len(data)} bytes, at most {MAX_RUNTIME_DATA}")
    return data


def kbs_failure(exc: KbsClientError | KbsUnavailable) -> Response:
    """A KBS failure as api-server-rest's caller should see it (KbsClientError carries the broker's detail)."""
    if isinstance(exc, KbsUnavailable):
        return text_response(503, f"Service Unavailable: {exc}")
    if exc.error_type is not None and exc.error_type.endswith(("/AttestationFailed", "/PolicyDeny")):
        return text_response(403, f"Forbidden: {exc}")
    if exc.status == 404:
        return text_response(404, f"Not Found: {exc}")
    return text_response(502, f"Bad Gateway: {exc}")


class Api:
    """The request handler: routes a parsed request to the session, the attester or the measurer."""

    def __init__(
        self,
        session: KbsSession,
        attester: Attester,
        device: Executor,
        *,
        version: str,
        measure: Measure | None = None,
    ) -> None:
        self._session = session
        self._attester = attester
        self._device = device
        self._measure = measure
        self._info = json.dumps(
            {"version": version, "tee": attester.tee, "additional_tees": [], "feature": "all"}
        ).encode()
        self._routes: dict[str, tuple[str, Callable[[Request], Awaitable[Response]]]] = {
            "/info": ("GET", self._get_info),
            "/aa/token": ("GET", self._get_token),
            "/aa/evidence": ("GET", self._get_evidence),
            "/aa/additional-evidence": ("GET", self._get_additional_evidence),
            "/aa/aael": ("POST", self._post_aael),
        }

    async def __call__(self, request: Request) -> Response:
        if len(request.query) > MAX_QUERY:
            size = len(request.query)
            return text_response(414, f"URI Too Long: the query is {size} characters, at most {MAX_QUERY}")
        path = request.path
        if path.startswith(RESOURCE_PREFIX):
            route: tuple[str, Callable[[Request], Awaitable[Response]]] | None = ("GET", self._get_resource)
        else:
            route = self._routes.get(path)
        if route is None:
            return text_response(404, f"Not Found: no route {path}")
        method, handler = route
        if request.method != method:
            return text_response(
                405, f"Method Not Allowed: {path} takes {method}, not {request.method}", {"Allow": method}
            )
        try:
            return await handler(request)
        except _BadRequest as exc:
            return text_response(400, f"Bad Request: {exc}")
        except (KbsClientError, KbsUnavailable) as exc:
            return kbs_failure(exc)
        except AttesterError as exc:
            return text_response(500, f"Internal Server Error: the TEE could not produce evidence: {exc}")

    async def _get_info(self, _request: Request) -> Response:
        return Response(200, self._info, JSON)

    async def _get_token(self, request: Request) -> Response:
        token_type = _query(request).get("token_type")
        if token_type is None:
            raise _BadRequest("token_type is required")
        if token_type != TOKEN_TYPE:
            raise _BadRequest(f"token_type {token_type!r} is not supported; expected kbs")
        attested = await self._session.token()
        # The key as PKCS#8 PEM (guest-components gives its RSA key as PKCS#1; an EC key has no PKCS#1 form).
        body = json.dumps({"token": attested.token, "tee_keypair": attested.key.private_pem()}).encode()
        return Response(200, body, OCTETS)

    async def _evidence(self, request: Request) -> dict[str, object]:
        runtime_data = _runtime_data(_query(request))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._device, self._attester.evidence, runtime_data)

    async def _get_evidence(self, request: Request) -> Response:
        return Response(200, json.dumps(await self._evidence(request)).encode(), OCTETS)

    async def _get_additional_evidence(self, request: Request) -> Response:
        _runtime_data(_query(request))  # checked as api-server-rest does, though no device needs it yet
        return Response(200, b"{}", OCTETS)

    async def _post_aael(self, request: Request) -> Response:
        if self._measure is None:
            return text_response(404, "Not Found: runtime measurement is not enabled in this agent")
        try:
            event = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest("the body is not JSON") from None
        if not isinstance(event, dict):
            raise _BadRequest('the body is not a JSON object {"domain", "operation", "content"}')
        fields = []
        for name in ("domain", "operation", "content"):
            value = event.get(name)
            if not isinstance(value, str):
                found = "missing" if value is None else type(value).__name__
                raise _BadRequest(f"field {name} is {found}, expected a string")
            fields.append(value)
        try:
            await self._measure(fields[0], fields[1], fields[2])
        except ValueError as exc:
            raise _BadRequest(str(exc)) from exc
        return Response(200, b'{"success":"true"}', JSON)

    async def _get_resource(self, request: Request) -> Response:
        segments = request.path.removeprefix(RESOURCE_PREFIX).split("/")
        if len(segments) != 3:
            raise _BadRequest(f"the resource path has {len(segments)} segments, expected <repository>/<type>/<tag>")
        for segment in segments:
            if segment in (".", "..") or not RESOURCE_SEGMENT.fullmatch(segment):
                raise _BadRequest(f"resource segment {segment!r} is not [A-Za-z0-9_-][A-Za-z0-9_.-]*")
        if request.query:
            raise _BadRequest("a resource path takes no query")
        data = await self._session.resource(*segments)
        return Response(200, data, OCTETS)
