"""The routes' dependencies: the services, the admin caller, the guest's credentials, and request bodies.

Every dependency is a coroutine, so none costs a trip through the thread pool. Bodies are read and checked here
rather than by FastAPI's body parameters: a body is parsed as JSON whatever its Content-Type (as the broker always has),
and a malformed one is answered `malformed request body at <field>: <why>`. `kbs.api.openapi` documents them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security import APIKeyCookie
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, ValidationError

from .._limits import ClientAddress, Limiter, Metrics
from ..admin_auth import AdminAuthority, Permission
from ..errors import KbsError
from ..protocol import RESOURCE_SEGMENT, SESSION_COOKIE
from ..services import (
    AdminService,
    AuditRecord,
    DecisionLog,
    Operations,
    PolicyAuthoring,
    RcarService,
    ReleaseService,
    Services,
    TpmEnrollmentService,
    resource_path,
    split_resource_path,
)

__all__ = [
    "RESOURCE_PATH_PATTERN",
    "Admin",
    "AdminCaller",
    "ApiContext",
    "Authoring",
    "Counters",
    "Decisions",
    "EarBearer",
    "JsonBody",
    "Ops",
    "RawBody",
    "Rcar",
    "Release",
    "ResourcePath",
    "SessionId",
    "Tpm",
    "context_of",
]

BodyModel = TypeVar("BodyModel", bound=BaseModel)
Result = TypeVar("Result")


@dataclass(frozen=True)
class ApiContext:
    """Everything the routes reach, built once by the app factory and kept in `app.state.context`.

    `executor` runs the services: verification, cryptography and the database are synchronous, and the event loop
    only parses, routes and answers. Its threads are as many as the cores (at least 2), so requests queue in order
    instead of taking turns at the interpreter lock, which keeps the tail latency near the median."""

    services: Services
    admin: AdminAuthority
    limiter: Limiter
    client_address: ClientAddress
    metrics: Metrics
    session_ttl_seconds: int
    secure_cookie: bool
    executor: ThreadPoolExecutor

    async def run(self, function: Callable[..., Result], *args: Any) -> Result:
        """`function(*args)` on the service threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


def context_of(request: Request) -> ApiContext:
    """The app's context, for the handshake's routes: read from the request they take anyway, rather than through
    a dependency FastAPI would solve on every request."""
    context: ApiContext = request.app.state.context
    return context


# Each dependency reads the context from the request itself rather than through a shared sub-dependency: FastAPI
# solves every dependency per request, so a flat graph keeps the layering free (bench/kbs_handshake.py).
async def _rcar(request: Request) -> RcarService:
    return context_of(request).services.rcar


async def _release(request: Request) -> ReleaseService:
    return context_of(request).services.release


async def _tpm(request: Request) -> TpmEnrollmentService:
    return context_of(request).services.tpm


async def _admin(request: Request) -> AdminService:
    return context_of(request).services.admin


async def _decisions(request: Request) -> DecisionLog:
    return context_of(request).services.decisions


async def _authoring(request: Request) -> PolicyAuthoring:
    return context_of(request).services.authoring


async def _operations(request: Request) -> Operations:
    return context_of(request).services.operations


async def _metrics(request: Request) -> Metrics:
    return context_of(request).metrics


Rcar = Annotated[RcarService, Depends(_rcar)]
Release = Annotated[ReleaseService, Depends(_release)]
Tpm = Annotated[TpmEnrollmentService, Depends(_tpm)]
Admin = Annotated[AdminService, Depends(_admin)]
Ops = Annotated[Operations, Depends(_operations)]
Decisions = Annotated[DecisionLog, Depends(_decisions)]
Authoring = Annotated[PolicyAuthoring, Depends(_authoring)]
Counters = Annotated[Metrics, Depends(_metrics)]


# -- credentials -----------------------------------------------------------------------------------------------


class BearerHeader(SecurityBase):
    """An `Authorization: Bearer <JWT>` security scheme in the OpenAPI document. The header is handed on as sent:
    the checks that follow want the exact `Bearer ` prefix and answer with trustee's errors, not FastAPI's."""

    def __init__(self, scheme_name: str, description: str) -> None:
        self.model = HTTPBearerModel(bearerFormat="JWT", description=description)
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


admin_bearer = BearerHeader(
    "admin-jwt",
    "An admin JWT (EdDSA or ES256, audience veritee-kbs-admin) signed by a key in [admin] public_keys; its `role` "
    "must grant the endpoint's permission.",
)
ear_bearer = BearerHeader("ear", "An EAR attestation token this broker issued at /attest.")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, scheme_name="kbs-session", auto_error=False, description="The session /auth opened."
)

SessionId = Annotated[str | None, Security(session_cookie)]


# How a guest shows it attested: a Bearer EAR (preferred when sent), or the session that attested (SessionId).
EarBearer = Annotated[str | None, Security(ear_bearer)]


class AdminCaller:
    """The admin caller as the audit log names it, `<subject> (<role>)`, once its token grants `permission`. A
    refused call (no token, a bad one, a role without the permission) is audited with the client's address and
    why; if that audit cannot be written the call is answered 503, not its refusal."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request, authorization: Annotated[str | None, Security(admin_bearer)]) -> str:
        context = context_of(request)
        try:
            identity = context.admin.authorise(authorization, self.permission)
        except KbsError as exc:
            refused = AuditRecord(
                f"client {context.client_address.of(request.scope)}",
                "admin.refused",
                f"{request.method} {request.url.path}",
                exc.variant,
                time.time(),
                reason=exc.detail,
            )
            await context.run(context.services.admin.refused, refused)
            raise
        return f"{identity.subject} ({identity.role})"


# -- bodies and paths ------------------------------------------------------------------------------------------


class JsonBody(Generic[BodyModel]):
    """The request body as `model`; 400 InvalidRequest naming the first bad field. With `rate_limit`, the client's
    bucket of that name (429 RateLimited, Retry-After) is checked first, before the body is read: the client is the
    TCP peer, or the forwarded address when the peer is a trusted proxy."""

    def __init__(self, model: type[BodyModel], rate_limit: str | None = None) -> None:
        self.model = model
        self.rate_limit = rate_limit

    async def __call__(self, request: Request) -> BodyModel:
        if self.rate_limit is not None:
            context = context_of(request)
            await context.limiter.check(self.rate_limit, context.client_address.of(request.scope))
        raw = await request.body()
        try:
            return self.model.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors()
            if not errors:
                raise KbsError.invalid_request("malformed request body") from exc
            where = ".".join(str(p) for p in errors[0]["loc"]) or "body"
            raise KbsError.invalid_request(f"malformed request body at {where}: {errors[0]['msg']}") from exc


async def _raw_body(request: Request) -> bytes:
    return await request.body()


# The body as bytes (application/octet-stream), capped like every body by the BodyLimit middleware.
RawBody = Annotated[bytes, Depends(_raw_body)]


# For the document only (json_schema_extra, not pattern): the check below answers a path that breaks it, with the
# segment at fault named, rather than FastAPI's validation.
_SEGMENT = RESOURCE_SEGMENT.pattern
RESOURCE_PATH_PATTERN = f"^{_SEGMENT}/{_SEGMENT}/{_SEGMENT}$"
_RESOURCE_PATH = Path(description="repo/type/tag", json_schema_extra={"pattern": RESOURCE_PATH_PATTERN})


class ResourcePath:
    """`repo/type/tag` after `prefix`, checked on the raw request path: `%2f` cannot smuggle a separator and `..` is
    refused rather than normalised."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(self, request: Request, path: Annotated[str, _RESOURCE_PATH]) -> str:
        del path  # declared for the OpenAPI document; the decoded form is not what is checked
        raw = request.scope.get("raw_path") or request.url.path.encode()
        sent = raw.decode("latin-1").split("?", 1)[0]
        if not sent.startswith(self.prefix):
            raise KbsError.invalid_request("malformed resource path")
        return resource_path(*split_resource_path(sent.removeprefix(self.prefix)))
