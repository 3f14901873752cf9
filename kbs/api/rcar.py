"""RCAR, trustee's KBS protocol 0.4.0: /auth -> /attest -> GET /resource."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from ..errors import KbsError
from ..protocol import BASE_PATH, SESSION_COOKIE
from .deps import (
    Context,
    Counters,
    GuestCredentials,
    JsonBody,
    Rcar,
    Release,
    ResourcePath,
    SessionId,
    auth_rate_limit,
)
from .errors import error_responses
from .schemas import AttestationRequest, AttestationToken, AuthRequest, Challenge, Jwe

__all__ = ["router"]

log = logging.getLogger("kbs")
router = APIRouter(prefix=BASE_PATH, tags=["rcar"])


@router.post(
    "/auth",
    response_model=Challenge,
    dependencies=[Depends(auth_rate_limit)],
    responses=error_responses(400, 413, 429, 503),
    summary="Open a session: a fresh nonce, and the kbs-session-id cookie (HttpOnly, SameSite=Strict)",
)
async def auth(
    body: Annotated[AuthRequest, Depends(JsonBody(AuthRequest))],
    response: Response,
    rcar: Rcar,
    context: Context,
    counters: Counters,
) -> Challenge:
    challenge, session_id = await run_in_threadpool(rcar.auth, body, time.time())
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=context.session_ttl_seconds,
        path=BASE_PATH,
        httponly=True,
        samesite="strict",
        secure=context.secure_cookie,
    )
    counters.inc("kbs_auth_total", tee=body.tee)
    return challenge


@router.post(
    "/attest",
    response_model=AttestationToken,
    responses=error_responses(400, 401, 413, 503),
    summary="Evidence bound to the session's nonce -> an EAR token (the nonce is spent whatever the outcome)",
)
async def attest(
    body: Annotated[AttestationRequest, Depends(JsonBody(AttestationRequest))],
    session_id: SessionId,
    rcar: Rcar,
    counters: Counters,
) -> AttestationToken:
    try:
        token = await run_in_threadpool(rcar.attest, session_id, body, time.time())
    except KbsError as exc:
        counters.inc("kbs_attest_total", outcome="rejected")
        log.info("attestation rejected: %s", exc.detail)
        raise
    counters.inc("kbs_attest_total", outcome="token")
    return AttestationToken(token=token)


@router.get(
    "/resource/{path:path}",
    response_model=Jwe,
    responses=error_responses(400, 401, 403, 404, 503),
    summary="A resource, encrypted to the tee-pubkey of the caller's EAR, if the resource policy allows",
)
async def get_resource(
    path: Annotated[str, Depends(ResourcePath(f"{BASE_PATH}/resource/"))],
    credentials: GuestCredentials,
    release: Release,
    counters: Counters,
) -> Jwe:
    try:
        jwe = await run_in_threadpool(
            release.release, path, credentials.session_id, credentials.authorization, time.time()
        )
    except KbsError as exc:
        counters.inc("kbs_resource_total", outcome=exc.variant)
        raise
    counters.inc("kbs_resource_total", outcome="released")
    return jwe
