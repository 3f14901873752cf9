"""TPM AK enrolment by credential activation (Veritee's own endpoints; the exchange is drawn in kbs.services.tpm)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from ..protocol import BASE_PATH
from .deps import JsonBody, Tpm
from .errors import error_responses
from .schemas import TpmActivateRequest, TpmCredentialChallenge, TpmEnrolled, TpmEnrollRequest

__all__ = ["router"]

router = APIRouter(prefix=f"{BASE_PATH}/tpm", tags=["tpm"])


@router.post(
    "/enroll",
    response_model=TpmCredentialChallenge,
    responses=error_responses(400, 401, 413, 429, 503),
    summary="An AK and an EK certificate -> a credential only the TPM holding both can activate",
)
async def enroll(
    body: Annotated[TpmEnrollRequest, Depends(JsonBody(TpmEnrollRequest, rate_limit="auth"))], tpm: Tpm
) -> TpmCredentialChallenge:
    return await run_in_threadpool(tpm.enroll, body, time.time())


@router.post(
    "/activate",
    response_model=TpmEnrolled,
    responses=error_responses(400, 401, 413, 503),
    summary="The activated secret -> the AK is enrolled (its quotes verify with ak_trust 'enrolled')",
)
async def activate(body: Annotated[TpmActivateRequest, Depends(JsonBody(TpmActivateRequest))], tpm: Tpm) -> TpmEnrolled:
    return await run_in_threadpool(tpm.activate, body, time.time())
