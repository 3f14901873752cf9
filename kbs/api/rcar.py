"""RCAR, trustee's KBS protocol 0.4.0: /auth -> /attest -> GET /resource.

These three routes are the broker's hot path, and FastAPI solves every dependency of a route on every request (tens
of microseconds each): they declare only what the OpenAPI document shows (the body, which checks the rate limit
too, the session cookie, the Bearer token, the resource path) and take the context from the request itself."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from verifier.appraisal import ANNOTATIONS
from verifier.ear import SUBMOD

from ..errors import KbsError
from ..protocol import BASE_PATH, SESSION_COOKIE
from .deps import EarBearer, JsonBody, ResourcePath, SessionId, context_of
from .errors import error_responses
from .schemas import AttestationRequest, AttestationToken, AuthRequest, Challenge, Jwe

__all__ = ["router"]

log = logging.getLogger("kbs")
router = APIRouter(prefix=BASE_PATH, tags=["rcar"])


@router.post(
    "/auth",
    response_model=Challenge,
    responses=error_responses(400, 413, 429, 503),
    summary="Open a session: a fresh nonce, and the kbs-session-id cookie (HttpOnly, SameSite=Strict)",
)
async def auth(
    request: Request,
    body: Annotated[AuthRequest, Depends(JsonBody(AuthRequest, rate_limit="auth"))],
    response: Response,
) -> Challenge:
    context = context_of(request)
    challenge, session_id = await context.run(context.services.rcar.auth, body, time.time())
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=context.session_ttl_seconds,
        path=BASE_PATH,
        httponly=True,
        samesite="strict",
        secure=context.secure_cookie,
    )
    context.metrics.inc("kbs_auth_total", tee=body.tee)
    return challenge


@router.post(
    "/attest",
    response_model=AttestationToken,
    responses=error_responses(400, 401, 413, 429, 503),
    summary="Evidence bound to the session's nonce -> an EAR token (the nonce is spent whatever the outcome)",
)
async def attest(
    request: Request,
    body: Annotated[AttestationRequest, Depends(JsonBody(AttestationRequest, rate_limit="attest"))],
    session_id: SessionId,
) -> AttestationToken:
    context = context_of(request)
    try:
        token = await context.run(
            context.services.rcar.attest, session_id, body, time.time(), context.client_address.of(request.scope)
        )
    except KbsError as exc:
        context.metrics.inc("kbs_attest_total", outcome="rejected")
        context.metrics.inc(
            "kbs_attestations_total",
            tee=exc.labels.get("tee", "unknown"),
            outcome="rejected",
            reason=exc.labels.get("reason", exc.variant),
        )
        log.info("attestation rejected: %s", exc.detail)
        raise
    context.metrics.inc("kbs_attest_total", outcome="token")
    context.metrics.inc("kbs_attestations_total", tee=_token_tee(token), outcome="token", reason="none")
    return AttestationToken(token=token)


def _token_tee(token: str) -> str:
    """The TEE an EAR this broker just signed appraised (its annotated evidence's one key that is not an annotation),
    for the metrics; no signature check needed on a token made a moment ago in this process."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        evidence = claims["submods"][SUBMOD]["ear.veraison.annotated-evidence"]
        return next((str(key) for key in evidence if key not in ANNOTATIONS), "unknown")
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
        return "unknown"


@router.get(
    "/resource/{path:path}",
    response_model=Jwe,
    responses=error_responses(400, 401, 403, 404, 503),
    summary="A resource, encrypted to the tee-pubkey of the caller's EAR, if the resource policy allows",
)
async def get_resource(
    request: Request,
    path: Annotated[str, Depends(ResourcePath(f"{BASE_PATH}/resource/"))],
    session_id: SessionId,
    authorization: EarBearer,
) -> Jwe:
    context = context_of(request)
    try:
        jwe = await context.run(
            context.services.release.release,
            path,
            session_id,
            authorization,
            time.time(),
            context.client_address.of(request.scope),
        )
    except KbsError as exc:
        context.metrics.inc("kbs_resource_total", outcome=exc.variant)
        raise
    context.metrics.inc("kbs_resource_total", outcome="released")
    # By path prefix only: the tag may itself name something an operator would not publish.
    repository, kind, _tag = path.split("/", 2)
    context.metrics.inc("kbs_releases_total", repository=repository, type=kind)
    return jwe
