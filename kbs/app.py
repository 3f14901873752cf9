"""The broker's ASGI application: trustee's KBS protocol 0.4.0 under /kbs/v0, the admin API, health and metrics.

`create_app` only assembles: services over the store (`kbs.services`), the routers (`kbs.api`), the error answers
and the body cap. Building it migrates the schema and makes sure a token signing key exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from . import __version__
from ._audit_chainer import AuditChainer
from ._limits import BodyLimit, ClientAddress, Metrics, RequestTimer, build_limiter
from .admin_auth import AdminAuthority
from .api import admin, decisions, openapi, operations, rcar, tpm
from .api.deps import ApiContext
from .api.errors import ErrorAnswers
from .services import build_services
from .services.decisions import DecisionLog
from .services.rcar import RcarService
from .settings import Settings
from .storage import Retention, StorageError, Store

__all__ = ["SETTINGS_ENV", "create_app", "create_app_from_environment", "retention", "service_threads"]

# `kbs serve --workers N` hands the settings to its worker processes as JSON in this variable.
SETTINGS_ENV = "VERITEE_SERVE_SETTINGS_JSON"

log = logging.getLogger("kbs")

DESCRIPTION = """\
Trustee's KBS protocol 0.4.0 (RCAR: /auth, /attest, /resource) with Veritee's TPM enrolment, admin and operations
endpoints. Every error is `{"type": "https://github.com/confidential-containers/kbs/errors/<Variant>", "detail"}`;
with `server.legacy_401` every client error is answered 401, as trustee does.
"""
ROUTERS = (rcar.router, tpm.router, admin.router, decisions.router, operations.router)


def service_threads(settings: Settings) -> int:
    """The threads of a worker's service pool: `server.threads`, or one per core this process may run on (>= 2)."""
    return settings.server.threads or max(2, len(os.sched_getaffinity(0)))


def retention(settings: Settings) -> Retention:
    return Retention(settings.history.retention_seconds, settings.history.max_versions)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    threads = service_threads(settings)
    store = store or Store(settings.database.url, threads=threads, retention=retention(settings))
    metrics = Metrics()
    metrics.collect(lambda: _transactions(store), label="kind")
    context = ApiContext(
        services=build_services(settings, store),
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
        executor=ThreadPoolExecutor(threads, thread_name_prefix="kbs-service"),
    )
    app = FastAPI(
        title="Veritee KBS",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=partial(_lifespan, context, AuditChainer(store)),
    )
    app.state.context = context
    ErrorAnswers(legacy_401=settings.server.legacy_401, metrics=metrics).install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = partial(openapi.document, app, ROUTERS)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, limit=settings.server.max_body_bytes, legacy_401=settings.server.legacy_401)
    app.add_middleware(RequestTimer, metrics=metrics)
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one `kbs serve --workers N` worker process, from the settings its parent resolved."""
    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def _transactions(store: Store) -> dict[str, dict[str, int]]:
    counts = store.transactions()
    return {
        "kbs_db_transactions_total": {"read": counts.read, "write": counts.write, "chain": counts.chain},
        "kbs_db_rollbacks_total": {"any": counts.rolled_back},
    }


@asynccontextmanager
async def _lifespan(context: ApiContext, chainer: AuditChainer, _app: FastAPI) -> AsyncIterator[None]:
    chainer.start()
    sweepers = [
        asyncio.create_task(_sweep_sessions(context, context.services.rcar)),
        asyncio.create_task(_sweep_decisions(context, context.services.decisions)),
    ]
    # What start-up built (modules, the app, its services, ~160,000 objects) lives as long as the process: out of
    # the collector's reach, a full collection, once 100-450 ms of a request's latency, no longer walks it.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        for sweeper in sweepers:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        context.executor.shutdown(wait=True, cancel_futures=True)
        await asyncio.to_thread(chainer.stop)  # after the requests: their entries get a last pass


async def _sweep_sessions(context: ApiContext, rcar: RcarService) -> None:
    """Delete expired sessions now and then, off the handshake's path (every worker does; the DELETE is idempotent)."""
    while True:
        await asyncio.sleep(rcar.sweep_interval)
        try:
            await context.run(rcar.sweep, time.time())
        except StorageError as exc:
            log.warning("session sweep failed: %s", exc)


async def _sweep_decisions(context: ApiContext, decisions: DecisionLog) -> None:
    """Delete decisions past their retention now and then, off the protocol's path (as sessions are)."""
    while True:
        try:
            await context.run(decisions.sweep, time.time())
        except StorageError as exc:
            log.warning("decision sweep failed: %s", exc)
        await asyncio.sleep(decisions.sweep_interval)
