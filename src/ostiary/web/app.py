"""``create_app``: the composition root of the HTTP server (ARCHITECTURE.md, layers)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ostiary import __version__
from ostiary.config import Settings, load_settings
from ostiary.features.clock import Clock
from ostiary.web.cors import PublicClientCors, origin_of
from ostiary.web.csrf import CsrfGuard
from ostiary.web.errors import install_error_handlers
from ostiary.web.fastlane import FastLane, lanes_of
from ostiary.web.logs import configure_logging, stop_logging
from ostiary.web.middleware import (
    BodyTooLarge,
    Metrics,
    RequestContextMiddleware,
    body_too_large,
    security_headers,
)
from ostiary.web.routes import (
    api_keys,
    api_v1,
    authorize,
    authzen,
    browser,
    credentials,
    demo,
    docs,
    email_verification,
    mfa_settings,
    oauth,
    ops,
    organizations,
    passkey_sign_in,
    passkeys,
    profile,
    second_factor,
    wellknown,
)
from ostiary.web.runtime import Runtime

__all__ = ["DEV_CLIENT_FILE", "OstiaryApp", "create_app", "create_worker_app"]

DEV_CLIENT_FILE = "dev-client.json"

log = structlog.get_logger("ostiary.web")


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class OstiaryApp(FastAPI):
    """FastAPI with our middlewares and the fast lane in front of it rather than inside.

    ``front`` (set by :func:`create_app`) takes every HTTP request first: request id, access
    log, metrics, body limit and security headers (web/middleware.py), CORS (web/cors.py), the
    fast lane (web/fastlane.py), then :meth:`behind_front`, FastAPI's own handling with its
    middleware stack (ServerErrorMiddleware and the rest) and router. Lifespan events go to
    FastAPI directly.
    """

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            scope["app"] = self  # Request.app, as Starlette sets it
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def behind_front(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, clock: Clock | None = None, fast_lane: bool = True
) -> OstiaryApp:
    """Build the ASGI app; adapters are created here, connections open lazily on first use.

    ``fast_lane=False`` sends the fast-lane endpoints through FastAPI's router too (tests
    compare the two answers)."""
    runtime = Runtime(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Objects built at start-up live for the whole process: keep them out of the cyclic
        # collector's generations, which cut the worst GC pause from 86 to 18 ms under load.
        gc.collect()
        gc.freeze()
        # A young collection every 10,000 net allocations instead of 700: a refresh grant
        # allocates a few thousand objects, so the default ran several collections per request
        # (bench/tokens.sh, c=16: 1,250 -> 1,400-1,460 refreshes/s, p99 28 -> 21-23 ms).
        gc.set_threshold(10_000, 10, 10)
        log.info("started", issuer=settings.issuer, version=__version__)
        if settings.webauthn is None:
            # Not an error: the pages say passkeys are unavailable; the operator learns why.
            log.warning("passkeys_off", reason=settings.webauthn_off)
        tasks = [asyncio.create_task(runtime.sync_revocations_forever())]
        tasks.append(asyncio.create_task(runtime.ensure_signing_key()))
        if settings.purge_interval_seconds:
            tasks.append(
                asyncio.create_task(runtime.purge_forever(settings.purge_interval_seconds))
            )
        if runtime.wal_checkpointer is not None:
            tasks.append(asyncio.create_task(runtime.wal_checkpointer.run_forever()))
        if runtime.revocation_bus is not None:
            tasks.append(asyncio.create_task(runtime.revocation_bus.listen(runtime.revoked.add)))
        tasks.append(asyncio.create_task(runtime.decision_log_buffer.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.decision_log_buffer.close()  # what is held, before the engine goes
            await runtime.close()
            log.info("stopped")

    app = OstiaryApp(
        title="Ostiary",
        version=__version__,
        summary="Identity and access platform for AI products",
        lifespan=lifespan,
        # /docs is ours (web/routes/docs.py: pinned, SRI, CSP), and only when enabled.
        docs_url=None,
        redoc_url=None,
        # Starlette's slash redirect builds an absolute URL from the Host header: a 307 to
        # any host a request names. Paths are exact here; /login/ is a 404.
        redirect_slashes=False,
    )
    metrics = Metrics()
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.csrf = CsrfGuard(
        runtime.csrf_key,
        secure=settings.sessions.cookie_secure,
        issuer_origin=_origin(settings.issuer),
        session_cookie=settings.sessions.cookie_name,
    )
    install_error_handlers(app)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.include_router(browser.router)
    app.include_router(second_factor.router)
    app.include_router(passkey_sign_in.router)
    app.include_router(profile.router)
    app.include_router(organizations.router)
    app.include_router(email_verification.router)
    app.include_router(mfa_settings.router)
    app.include_router(passkeys.router)
    app.include_router(credentials.router)
    app.include_router(wellknown.router)
    app.include_router(authorize.router)
    app.include_router(oauth.router)
    app.include_router(api_keys.router)
    app.include_router(api_v1.router)
    app.include_router(authzen.router)
    if settings.dev_mode:
        demo_file = settings.data_dir / DEV_CLIENT_FILE
        if demo_file.is_file():
            app.state.demo_client = orjson.loads(demo_file.read_bytes())
        app.include_router(demo.router)
    app.include_router(ops.router)
    if settings.api_docs_enabled:
        app.include_router(docs.router)
    app.mount(
        "/static",
        StaticFiles(directory=Path(__file__).with_name("static")),
        name="static",
    )

    async def public_client_origins() -> frozenset[str]:
        async with runtime.unit() as unit:
            clients = await unit.clients.list()
        return frozenset(
            origin
            for client in clients
            if client.is_public and not client.disabled
            for uri in client.redirect_uris
            if (origin := origin_of(uri)) is not None
        )

    # In front of FastAPI (OstiaryApp): the token, introspection, revocation and userinfo
    # endpoints, API-key verification (web/routes/api_keys.py) and the AuthZEN decisions
    # (web/routes/authzen.py) are served without FastAPI's middleware stack, routing and
    # request handling. The lanes take the paths as declared on these routers, which are
    # included without a prefix.
    inner: ASGIApp = app.behind_front
    if fast_lane:
        inner = FastLane(
            inner,
            lanes=lanes_of([*oauth.router.routes, *api_keys.router.routes, *authzen.router.routes]),
            exception_handlers=app.exception_handlers,
        )
    app.front = RequestContextMiddleware(
        PublicClientCors(inner, load_origins=public_client_origins),
        metrics=metrics,
        headers=security_headers(settings.issuer),
        access_log=settings.access_log,
    )
    _declare_security_schemes(app)
    return app


def _declare_security_schemes(app: FastAPI) -> None:
    """Name the schemes the OAuth endpoints' ``security`` entries refer to (OpenAPI 3.1 4.8.27)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["clientBasic"] = {
                "type": "http",
                "scheme": "basic",
                "description": "client_secret_basic (RFC 6749 section 2.3.1)",
            }
            schemes["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "RFC 6750 bearer access token (RFC 9068 JWT); on /api/v1 a "
                "user's token with the scope ostiary.manage, or an ost_sk_ API key",
            }
            schemes["apiKey"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "ost_sk_ API key",
                "description": "An API key as an RFC 6750 bearer credential",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_worker_app() -> FastAPI:
    """The app of one ``ostiary serve --workers N`` process (uvicorn's factory, run in the
    worker after it starts): settings from the environment the supervisor passed on, the
    worker's own log writer, flushed when the app stops, because uvicorn ends a worker by
    raising SIGTERM again after the graceful shutdown and the process then dies without running
    exit handlers."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings)
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        try:
            async with serving(app) as state:
                yield state
        finally:
            stop_logging()

    app.router.lifespan_context = lifespan
    return app
