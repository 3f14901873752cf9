"""Error answers: every failure leaves as trustee's `{"type": ".../errors/<Variant>", "detail"}` with Veritee's status
code, or 401 for every client error under `server.legacy_401` (trustee's old clients)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from .._limits import Metrics
from ..errors import KbsError
from ..sealing import SealError
from ..storage import StorageError
from .schemas import ErrorBody

__all__ = ["ErrorAnswers", "error_responses"]

log = logging.getLogger("kbs")

_MEANING = {
    400: "malformed request (InvalidRequest, ProtocolVersion)",
    401: "no or expired session or token, failed attestation, or no admin token (every client error under legacy_401)",
    403: "denied by the resource policy (PolicyDeny) or admin role without the permission (AdminDenied)",
    404: "no such resource, policy or reference value (ResourceNotFound)",
    413: "request body over server.max_body_bytes (PayloadTooLarge)",
    429: "too many requests from this client (RateLimited)",
    503: "the broker's database or key-encryption key is unavailable (ServiceUnavailable)",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the error body."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}


class ErrorAnswers:
    """The exception handlers of the app; each failure is counted in `kbs_errors_total` by variant."""

    def __init__(self, *, legacy_401: bool, metrics: Metrics) -> None:
        self._legacy_401 = legacy_401
        self._metrics = metrics

    def install(self, app: FastAPI) -> None:
        app.add_exception_handler(KbsError, self._kbs_error)  # type: ignore[arg-type]
        app.add_exception_handler(StorageError, self._storage_error)  # type: ignore[arg-type]
        app.add_exception_handler(SealError, self._seal_error)  # type: ignore[arg-type]
        app.add_exception_handler(RequestValidationError, self._validation_error)  # type: ignore[arg-type]
        app.add_exception_handler(HTTPException, self._http_error)  # type: ignore[arg-type]

    def respond(self, error: KbsError) -> JSONResponse:
        status = 401 if self._legacy_401 and error.status < 500 else error.status
        self._metrics.inc("kbs_errors_total", variant=error.variant)
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
        return JSONResponse(error.body(), status_code=status, headers=headers)

    async def _kbs_error(self, _request: Request, exc: KbsError) -> JSONResponse:
        return self.respond(exc)

    async def _storage_error(self, _request: Request, exc: StorageError) -> JSONResponse:
        log.error("storage failure: %s", exc)
        self._metrics.inc("kbs_database_errors_total")
        return self.respond(KbsError.unavailable("the broker's database is unavailable; retry later"))

    async def _seal_error(self, _request: Request, exc: SealError) -> JSONResponse:
        # A secret that does not open (its key retired and gone, the token away, tampered storage) is the operator's
        # to fix: the message names the secret and the key, never a value.
        log.error("sealed secret unavailable: %s", exc)
        return self.respond(KbsError.unavailable(str(exc)))

    async def _validation_error(self, _request: Request, exc: RequestValidationError) -> JSONResponse:
        return self.respond(KbsError.invalid_request(f"malformed request: {exc.errors()[:1]}"))

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        """The framework's own refusals in trustee's error shape too: no route (404) and a method the path does not
        take (405, its Allow naming every method of the path: each method is a route of its own, and the framework
        names only those of the first route that matched). Not turned into 401 by legacy_401: no route is no KBS."""
        if exc.status_code == 404:
            error = KbsError.not_found("no such endpoint")
            headers = None
        elif exc.status_code == 405:
            routes = request.app.router.routes
            allowed = [
                method
                for method in _METHODS
                if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
            ]
            error = KbsError(405, "InvalidRequest", f"{request.method} is not a method of this endpoint")
            headers = {"Allow": ", ".join(allowed)}
        else:
            return await http_exception_handler(request, exc)
        self._metrics.inc("kbs_errors_total", variant=error.variant)
        return JSONResponse(error.body(), status_code=error.status, headers=headers)
