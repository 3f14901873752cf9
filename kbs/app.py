"""The broker's HTTP surface: trustee's KBS protocol 0.4.0 under /kbs/v0, admin endpoints, health and metrics.

Routes only translate HTTP to `Broker` calls (run in the thread pool: storage is synchronous) and back.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from . import __version__
from ._limits import BodyLimit, Metrics, RateLimiter
from .admin_auth import AdminAuthority, Permission
from .errors import KbsError
from .protocol import (
    SESSION_COOKIE,
    ProtocolError,
    parse_attestation,
    parse_request,
    parse_tpm_activate_request,
    parse_tpm_enroll_request,
)
from .sealing import Sealer, load_or_create_kek
from .service import Broker, now_seconds, resource_path, split_resource_path
from .settings import Settings
from .storage import StorageError, Store

__all__ = ["create_app"]

log = logging.getLogger("kbs")
BASE = "/kbs/v0"
T = TypeVar("T", bound=BaseModel)
M = TypeVar("M")


class ResourcePolicyBody(BaseModel):
    policy: str
    # Veritee extension: scope a policy to a resource path prefix (repo, repo/type or repo/type/tag).
    scope: str | None = None


class AttestationPolicyBody(BaseModel):
    policy_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    policy: str
    type: str = "rego"


class ReferenceValueBody(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    values: list[str] = Field(max_length=1000)
    expires: datetime | None = None


def _raw_resource_path(request: Request, prefix: str) -> str:
    """The resource path exactly as sent: validated on the raw bytes, so `%2f` cannot smuggle a separator and
    `..` is refused rather than normalised."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    if not path.startswith(prefix):
        raise KbsError.invalid_request("malformed resource path")
    return resource_path(*split_resource_path(path.removeprefix(prefix)))


async def _json(request: Request, model: type[T]) -> T:
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if not errors:
            raise KbsError.invalid_request("malformed request body") from exc
        where = ".".join(str(p) for p in errors[0]["loc"]) or "body"
        raise KbsError.invalid_request(f"malformed request body at {where}: {errors[0]['msg']}") from exc


async def _wire(request: Request, parse: Callable[[bytes], M]) -> M:
    """A protocol message body, checked by the wire module's parser."""
    try:
        return parse(await request.body())
    except ProtocolError as exc:
        raise KbsError.invalid_request(f"malformed request body at {exc.field}: {exc.problem}") from exc


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    store = store or Store(settings.database.url)
    sealer = Sealer(load_or_create_kek(settings.storage.kek_file, create=False))
    broker = Broker(settings, store, sealer)
    broker.start()
    admin = AdminAuthority.from_files(settings.admin.public_keys)
    limiter = RateLimiter(settings.rate_limit.auth_per_minute)
    metrics = Metrics()
    secure_cookie = settings.server.tls_cert is not None

    app = FastAPI(title="Veritee KBS", version=__version__, docs_url=None, redoc_url=None)
    app.state.broker = broker

    def respond_error(error: KbsError) -> JSONResponse:
        status = 401 if settings.server.legacy_401 and error.status < 500 else error.status
        metrics.inc("kbs_errors_total", variant=error.variant)
        return JSONResponse(error.body(), status_code=status)

    @app.exception_handler(KbsError)
    async def _kbs_error(_request: Request, exc: KbsError) -> JSONResponse:
        return respond_error(exc)

    @app.exception_handler(StorageError)
    async def _storage_error(_request: Request, exc: StorageError) -> JSONResponse:
        log.error("storage failure: %s", exc)
        return respond_error(KbsError.unavailable("the broker's database is unavailable; retry later"))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond_error(KbsError.invalid_request(f"malformed request: {exc.errors()[:1]}"))

    def admin_call(request: Request, permission: Permission) -> str:
        identity = admin.authorise(request.headers.get("authorization"), permission)
        return f"{identity.subject} ({identity.role})"

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)

    # -- RCAR ------------------------------------------------------------------------------------------------
    @app.post(f"{BASE}/auth")
    async def auth(request: Request) -> Response:
        limiter.check(request.client.host if request.client else "unknown")
        body = await _wire(request, parse_request)
        challenge, session_id = await run(broker.auth, body, now_seconds())
        response = JSONResponse(challenge.to_dict())
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=settings.sessions.ttl_seconds,
            path=BASE,
            httponly=True,
            samesite="strict",
            secure=secure_cookie,
        )
        metrics.inc("kbs_auth_total", tee=body.tee)
        return response

    @app.post(f"{BASE}/attest")
    async def attest(request: Request) -> Response:
        body = await _wire(request, parse_attestation)
        try:
            token = await run(broker.attest, request.cookies.get(SESSION_COOKIE), body, now_seconds())
        except KbsError as exc:
            metrics.inc("kbs_attest_total", outcome="rejected")
            log.info("attestation rejected: %s", exc.detail)
            raise
        metrics.inc("kbs_attest_total", outcome="token")
        return JSONResponse({"token": token})

    # -- TPM AK enrolment by credential activation (kbs/tpm_enrollment.py) ------------------------------------
    @app.post(f"{BASE}/tpm/enroll")
    async def tpm_enroll(request: Request) -> Response:
        limiter.check(request.client.host if request.client else "unknown")
        body = await _wire(request, parse_tpm_enroll_request)
        challenge = await run(broker.tpm_enroll, body, now_seconds())
        return JSONResponse(challenge.to_dict())

    @app.post(f"{BASE}/tpm/activate")
    async def tpm_activate(request: Request) -> Response:
        body = await _wire(request, parse_tpm_activate_request)
        enrolled = await run(broker.tpm_activate, body, now_seconds())
        return JSONResponse(enrolled.to_dict())

    @app.get(BASE + "/resource/{path:path}")
    async def get_resource(path: str, request: Request) -> Response:
        path = _raw_resource_path(request, f"{BASE}/resource/")
        try:
            response = await run(
                broker.release,
                path,
                request.cookies.get(SESSION_COOKIE),
                request.headers.get("authorization"),
                now_seconds(),
            )
        except KbsError as exc:
            metrics.inc("kbs_resource_total", outcome=exc.variant)
            raise
        metrics.inc("kbs_resource_total", outcome="released")
        return JSONResponse(response)

    # -- admin: trustee's endpoints -------------------------------------------------------------------------
    @app.post(BASE + "/resource/{path:path}")
    async def put_resource(path: str, request: Request) -> Response:
        actor = admin_call(request, Permission.RESOURCE_WRITE)
        path = _raw_resource_path(request, f"{BASE}/resource/")
        value = await request.body()
        await run(broker.put_resource, actor, path, value, now_seconds())
        return Response(status_code=200)

    @app.delete(BASE + "/resource/{path:path}")
    async def delete_resource(path: str, request: Request) -> Response:
        actor = admin_call(request, Permission.RESOURCE_WRITE)
        path = _raw_resource_path(request, f"{BASE}/resource/")
        await run(broker.delete_resource, actor, path, now_seconds())
        return Response(status_code=200)

    @app.post(f"{BASE}/resource-policy")
    async def set_resource_policy(request: Request) -> Response:
        actor = admin_call(request, Permission.POLICY_WRITE)
        body = await _json(request, ResourcePolicyBody)
        policy_id = "resource"
        if body.scope:
            parts = body.scope.strip("/").split("/")
            if len(parts) > 3:
                raise KbsError.invalid_request("policy scope is repo, repo/type or repo/type/tag")
            resource_path(*(parts + ["x"] * (3 - len(parts))))
            policy_id = f"resource:{'/'.join(parts)}"
        await run(broker.set_policy, actor, policy_id, body.policy, now_seconds())
        return JSONResponse({"policy_id": policy_id})

    @app.post(f"{BASE}/attestation-policy")
    async def set_attestation_policy(request: Request) -> Response:
        actor = admin_call(request, Permission.POLICY_WRITE)
        body = await _json(request, AttestationPolicyBody)
        if body.type != "rego":
            raise KbsError.invalid_request(f"policy type is {body.type!r}, expected 'rego'")
        await run(broker.set_policy, actor, f"attestation:{body.policy_id}", body.policy, now_seconds())
        return JSONResponse({"policy_id": f"attestation:{body.policy_id}"})

    @app.post(f"{BASE}/reference-value")
    async def put_reference_value(request: Request) -> Response:
        actor = admin_call(request, Permission.REFERENCE_WRITE)
        body = await _json(request, ReferenceValueBody)
        await run(broker.put_reference_values, actor, body.name, body.values, body.expires, now_seconds())
        return JSONResponse({"name": body.name, "count": len(set(body.values))})

    # -- admin: Veritee's list/get/delete -------------------------------------------------------------------
    @app.get(f"{BASE}/admin/resources")
    async def list_resources(request: Request) -> Response:
        admin_call(request, Permission.RESOURCE_READ)
        return JSONResponse(await run(broker.list_resources))

    @app.get(BASE + "/admin/resource/{path:path}")
    async def read_resource(path: str, request: Request) -> Response:
        actor = admin_call(request, Permission.RESOURCE_READ)
        path = _raw_resource_path(request, f"{BASE}/admin/resource/")
        value = await run(broker.get_resource, actor, path, now_seconds())
        return Response(value, media_type="application/octet-stream")

    @app.get(f"{BASE}/admin/policies")
    async def list_policies(request: Request) -> Response:
        admin_call(request, Permission.POLICY_READ)
        rows = await run(store.list_policies)
        return JSONResponse([{"id": r.id, "sha256": r.sha256, "updated_at": r.updated_at} for r in rows])

    @app.get(BASE + "/admin/policy/{policy_id:path}")
    async def get_policy(policy_id: str, request: Request) -> Response:
        admin_call(request, Permission.POLICY_READ)
        row = await run(store.get_policy, policy_id)
        if row is None:
            raise KbsError.not_found(f"policy {policy_id} does not exist")
        encoded = base64.urlsafe_b64encode(row.source.encode()).decode().rstrip("=")
        return JSONResponse({"id": row.id, "policy": encoded, "sha256": row.sha256, "updated_at": row.updated_at})

    @app.delete(BASE + "/admin/policy/{policy_id:path}")
    async def delete_policy(policy_id: str, request: Request) -> Response:
        actor = admin_call(request, Permission.POLICY_WRITE)
        await run(broker.delete_policy, actor, policy_id, now_seconds())
        return Response(status_code=200)

    @app.get(f"{BASE}/admin/reference-values")
    async def list_reference_values(request: Request) -> Response:
        admin_call(request, Permission.REFERENCE_READ)
        rows = await run(store.reference_values)
        return JSONResponse([{"name": r.name, "value": r.value, "expires_at": r.expires_at} for r in rows])

    @app.delete(BASE + "/admin/reference-value/{name}")
    async def delete_reference_value(name: str, request: Request) -> Response:
        actor = admin_call(request, Permission.REFERENCE_WRITE)
        await run(broker.delete_reference_values, actor, name, now_seconds())
        return Response(status_code=200)

    @app.get(f"{BASE}/admin/audit")
    async def audit(request: Request, limit: int = 100) -> Response:
        admin_call(request, Permission.AUDIT_READ)
        rows = await run(store.audit_log, max(1, min(limit, 1000)))
        return JSONResponse([r.model_dump() for r in rows])

    @app.post(f"{BASE}/admin/signing-key/rotate")
    async def rotate(request: Request) -> Response:
        actor = admin_call(request, Permission.KEYS_ROTATE)
        return JSONResponse({"kid": await run(broker.rotate_signing_key, actor, now_seconds())})

    # -- operations -----------------------------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        await run(store.ping)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        return JSONResponse(await run(broker.keys.jwks))

    app.add_middleware(BodyLimit, limit=settings.server.max_body_bytes, legacy_401=settings.server.legacy_401)
    return app
