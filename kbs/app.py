"""The broker's ASGI application: trustee's KBS protocol 0.4.0 under /kbs/v0, the admin API, health and metrics.

`create_app` only assembles: services over the store (`kbs.services`), the routers (`kbs.api`), the error answers
and the body cap. Building it migrates the schema and makes sure a token signing key exists.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from . import __version__
from ._limits import BodyLimit, ClientAddress, Metrics, RequestTimer, build_limiter
from .admin_auth import AdminAuthority
from .api import admin, openapi, operations, rcar, tpm
from .api.deps import ApiContext
from .api.errors import ErrorAnswers
from .services import build_services
from .settings import Settings
from .storage import Store

__all__ = ["create_app"]

DESCRIPTION = """\
Trustee's KBS protocol 0.4.0 (RCAR: /auth, /attest, /resource) with Veritee's TPM enrolment, admin and operations
endpoints. Every error is `{"type": "https://github.com/confidential-containers/kbs/errors/<Variant>", "detail"}`;
with `server.legacy_401` every client error is answered 401, as trustee does.
"""
ROUTERS = (rcar.router, tpm.router, admin.router, operations.router)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    metrics = Metrics()
    context = ApiContext(
        services=build_services(settings, store or Store(settings.database.url)),
        admin=AdminAuthority.from_files(settings.admin.public_keys),
        limiter=build_limiter(
            {"auth": settings.rate_limit.auth_per_minute, "attest": settings.rate_limit.attest_per_minute},
            settings.limits.redis_url,
            metrics,
        ),
        client_address=ClientAddress(settings.server.trusted_proxies),
        metrics=metrics,
        session_ttl_seconds=settings.sessions.ttl_seconds,
        secure_cookie=settings.server.tls_cert is not None,
    )
    app = FastAPI(title="Veritee KBS", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.context = context
    ErrorAnswers(legacy_401=settings.server.legacy_401, metrics=metrics).install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = partial(openapi.document, app, ROUTERS)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, limit=settings.server.max_body_bytes, legacy_401=settings.server.legacy_401)
    app.add_middleware(RequestTimer, metrics=metrics)
    return app
