"""The admin API of recorded decisions: list, show and explain them, and replay them under a candidate policy.
Each needs `policy:read` (policy authors and auditors): decisions carry the claims guests presented, after the
configured redactions, never a secret; a replay stores nothing."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..protocol import BASE_PATH
from ..services import resource_path, split_resource_path
from ..services.admin import b64url_text
from ..storage import DecisionFilter
from ._params import JSON_INTEGER, BoolParam, NumberParam
from .admin import PolicyReader
from .deps import RESOURCE_PATH_PATTERN, Authoring, Decisions, JsonBody
from .errors import error_responses
from .schemas import MAX_ID, DecisionDocument, DecisionExplanation, DecisionInfo, ImpactReport, ImpactRequest

__all__ = ["router"]

router = APIRouter(prefix=BASE_PATH, tags=["admin"])


@router.get(
    "/admin/decisions",
    response_model=list[DecisionInfo],
    responses=error_responses(400, 401, 403, 503),
    summary="Recorded decisions, newest first (limit 1..1000): by kind, denied only, since a time, for a path",
)
async def list_decisions(
    _actor: PolicyReader,
    decisions: Decisions,
    kind: Literal["attestation", "resource"] | None = None,
    denied: BoolParam = False,
    since: Annotated[NumberParam | None, Query(description="UNIX seconds")] = None,
    path: Annotated[
        str | None,
        Query(description="a resource path, repo/type/tag", json_schema_extra={"pattern": RESOURCE_PATH_PATTERN}),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=1000), JSON_INTEGER, Query()] = 100,
) -> list[DecisionInfo]:
    if path is not None:  # the broker's check, naming the segment at fault (the pattern only documents it)
        path = resource_path(*split_resource_path(path))
    where = DecisionFilter(kind=kind, denied=denied, since=since, path=path, limit=limit)
    return await run_in_threadpool(decisions.list, where, time.time())


DecisionId = Annotated[int, Field(ge=1, le=MAX_ID), JSON_INTEGER, Path()]


@router.get(
    "/admin/decision/{decision_id}",
    response_model=DecisionDocument,
    responses=error_responses(400, 401, 403, 404, 503),
    summary="A recorded decision with the input its policy judged, the reference values it asked for and the vector",
)
async def show_decision(_actor: PolicyReader, decision_id: DecisionId, decisions: Decisions) -> DecisionDocument:
    return await run_in_threadpool(decisions.show, decision_id, time.time())


@router.get(
    "/admin/decision/{decision_id}/explain",
    response_model=DecisionExplanation,
    responses=error_responses(400, 401, 403, 404, 503),
    summary="Why a recorded decision went as it did: the rule that decided and each condition that was false, with "
    "the values it compared (attestation: the trust vector, each claim's rule and the ear.status)",
)
async def explain_decision(_actor: PolicyReader, decision_id: DecisionId, authoring: Authoring) -> DecisionExplanation:
    return await run_in_threadpool(authoring.explain, decision_id, time.time())


@router.post(
    "/admin/policy-impact",
    response_model=ImpactReport,
    responses=error_responses(400, 401, 403, 413, 503),
    summary="Replay the recorded decisions under a candidate policy (stored nowhere) and list those it flips",
)
async def policy_impact(
    _actor: PolicyReader, body: Annotated[ImpactRequest, Depends(JsonBody(ImpactRequest))], authoring: Authoring
) -> ImpactReport:
    source = b64url_text(body.policy, "policy")
    return await run_in_threadpool(authoring.impact, body.kind, body.policy_id, source, body.since, time.time())
