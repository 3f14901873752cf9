"""Operations: liveness, readiness (the database answers), Prometheus counters and the token keys."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from .deps import Counters, Ops
from .errors import error_responses
from .schemas import Health, Jwks

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class PrometheusText(PlainTextResponse):
    media_type = "text/plain; version=0.0.4"


_OK = Health(status="ok")
_READY = Health(status="ready")


@router.get("/healthz", response_model=Health, summary="The process answers")
async def healthz() -> Health:
    return _OK


@router.get("/readyz", response_model=Health, responses=error_responses(503), summary="The database answers")
async def readyz(operations: Ops) -> Health:
    await run_in_threadpool(operations.ready)
    return _READY


@router.get(
    "/metrics",
    response_class=PrometheusText,
    summary="Counters in the Prometheus text format",
)
async def metrics(counters: Counters) -> PrometheusText:
    return PrometheusText(counters.render())


@router.get(
    "/.well-known/jwks.json",
    response_model=Jwks,
    responses=error_responses(503),
    summary="The EAR token signing keys (rotated-out keys stay for the overlap)",
)
async def jwks(operations: Ops) -> Jwks:
    return Jwks(**await run_in_threadpool(operations.jwks))
