"""The fast lane (web/fastlane.py): the token, introspection, revocation and userinfo endpoints
are served without FastAPI's router, and answer exactly as they did through it (RFC 6749
section 5.1 and 5.2 headers and errors, RFC 6750 section 3 challenges, RFC 9110 section 15.5.6
``Allow`` on a 405, the request id, metrics by route template, CORS for public clients)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ostiary.config import Settings
from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.web.app import create_app
from ostiary.web.errors import PageError
from ostiary.web.fastlane import FastLane, lanes_of
from ostiary.web.routes import oauth

SPA_ORIGIN = "https://spa.example:8443"
HOT_PATH = {
    ("POST", "/token"),
    ("POST", "/introspect"),
    ("POST", "/revoke"),
    ("GET", "/userinfo"),
    ("POST", "/userinfo"),
}


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
async def clients(app: Any) -> dict[str, Any]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        machine, secret = await unit.clients.register(
            ClientRegistration(
                name="Batch", grant_types=("client_credentials",), scopes=("models:read",)
            )
        )
        spa, _ = await unit.clients.register(
            ClientRegistration(name="SPA", public=True, redirect_uris=(f"{SPA_ORIGIN}/callback",))
        )
    return {"basic": _basic(machine.client_id, secret), "spa": spa.client_id}


def _spy_on_router(app: FastAPI) -> list[tuple[str, str]]:
    """Record every request that reaches FastAPI's router."""
    entered: list[tuple[str, str]] = []
    inner = app.router.middleware_stack

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            entered.append((scope["method"], scope["path"]))
        await inner(scope, receive, send)

    app.router.middleware_stack = spy
    return entered


async def test_lanes_are_the_oauth_routes() -> None:
    assert set(lanes_of(oauth.router.routes)) == HOT_PATH


async def test_hot_path_requests_never_enter_the_router(
    app: FastAPI, client: httpx.AsyncClient, clients: dict[str, Any]
) -> None:
    entered = _spy_on_router(app)
    auth = {"Authorization": clients["basic"]}
    issued = await client.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert issued.status_code == 200
    assert issued.headers["cache-control"] == "no-store"
    assert issued.headers["pragma"] == "no-cache"
    access_token = issued.json()["access_token"]
    introspected = await client.post("/introspect", data={"token": access_token}, headers=auth)
    assert introspected.json()["active"] is True
    revoked = await client.post("/revoke", data={"token": "unknown"}, headers=auth)
    assert (revoked.status_code, revoked.json()) == (200, {})
    # RFC 6750 section 3: no token, a challenge without an error code.
    for method in ("GET", "POST"):
        info = await client.request(method, "/userinfo")
        assert info.status_code == 401
        assert info.headers["www-authenticate"] == 'Bearer realm="ostiary"'
    assert entered == []
    healthz = await client.get("/healthz")
    assert healthz.status_code == 200
    assert entered == [("GET", "/healthz")]


async def test_other_methods_fall_through_to_the_routers_405(
    app: FastAPI, client: httpx.AsyncClient, clients: dict[str, Any]
) -> None:
    entered = _spy_on_router(app)
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        response = await client.request(method, "/token", headers={"Accept": "application/json"})
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
    # HEAD is served as GET (RFC 9110 section 9.3.2), so it reaches the router as GET.
    assert [m for m, _ in entered] == ["GET", "GET", "PUT", "DELETE"]
    put = await client.put("/userinfo")
    assert put.status_code == 405
    assert put.headers["allow"] == "GET, POST"


async def test_head_userinfo_is_get_without_content(client: httpx.AsyncClient) -> None:
    get = await client.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    head = await client.head("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert head.status_code == get.status_code == 401
    assert head.headers["www-authenticate"] == get.headers["www-authenticate"]
    assert 'error="invalid_token"' in head.headers["www-authenticate"]
    assert head.content == b""
    assert get.json()["error"] == "invalid_token"


async def test_metrics_request_id_and_cors_still_apply(
    client: httpx.AsyncClient, clients: dict[str, Any]
) -> None:
    echoed = await client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": clients["basic"], "X-Request-Id": "trace-42"},
    )
    assert echoed.headers["x-request-id"] == "trace-42"
    fresh = await client.post("/revoke", data={"token": "x", "client_id": clients["spa"]})
    assert len(fresh.headers["x-request-id"]) == 16
    cors = await client.post(
        "/revoke",
        data={"token": "x", "client_id": clients["spa"]},
        headers={"Origin": SPA_ORIGIN},
    )
    assert cors.status_code == 200
    assert cors.headers["access-control-allow-origin"] == SPA_ORIGIN
    assert cors.headers["vary"] == "Origin"
    assert cors.headers["access-control-expose-headers"] == "www-authenticate"
    await client.head("/userinfo")
    body = (await client.get("/metrics")).text
    assert 'ostiary_http_requests_total{method="POST",route="/token",status="200"} 1.0' in body
    assert 'ostiary_http_requests_total{method="POST",route="/revoke",status="200"} 2.0' in body
    assert 'ostiary_http_requests_total{method="GET",route="/userinfo",status="401"} 1.0' in body
    assert 'route="unmatched"' not in body


async def test_behind_a_root_path(
    app: FastAPI, settings: Settings, clients: dict[str, Any]
) -> None:
    entered = _spy_on_router(app)
    transport = httpx.ASGITransport(app=app, root_path="/idp")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.post(
            "/idp/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": clients["basic"]},
        )
    assert response.status_code == 200
    assert entered == []


def test_routes_that_need_fastapi_are_refused() -> None:
    router = APIRouter()

    @router.post("/with-query")
    async def with_query(request: Request, limit: int) -> Response:
        return Response()

    @router.get("/items/{item}")
    async def with_path(request: Request) -> Response:
        return Response()

    for route in router.routes:
        with pytest.raises(ValueError, match="needs FastAPI"):
            lanes_of([route])


@pytest.mark.parametrize(
    ("method", "path", "headers", "challenge"),
    [
        ("POST", "/token", {"Authorization": "Basic !"}, 'Basic realm="ostiary", charset="UTF-8"'),
        ("POST", "/token", {}, None),
        ("GET", "/userinfo", {}, 'Bearer realm="ostiary"'),
    ],
)
async def test_prebuilt_headers_are_those_starlette_would_build(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    challenge: str | None,
) -> None:
    """RFC 6749 section 5.1/5.2 and RFC 6750 section 3 headers, in Starlette's own order."""
    response = await client.request(method, path, data={"grant_type": "x"}, headers=headers)
    merged = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if challenge is not None:
        merged["WWW-Authenticate"] = challenge
    reference = Response(
        response.content, response.status_code, headers=merged, media_type="application/json"
    )
    expected = [(k.decode(), v.decode()) for k, v in reference.raw_headers]
    assert response.headers.multi_items()[: len(expected)] == expected
    assert response.status_code in (400, 401)


# -- the same answers as through FastAPI's router -------------------------------------------


@pytest.fixture
async def router_only(settings: Settings, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    """The same app without the fast lane: every request goes through FastAPI's router."""
    application = create_app(settings, clock=clock, fast_lane=False)
    fast = create_app(settings, clock=clock)
    assert isinstance(fast.front.app.app, FastLane)  # type: ignore[union-attr]
    assert not isinstance(application.front.app.app, FastLane)  # type: ignore[union-attr]
    await fast.state.runtime.close()
    yield application
    await application.state.runtime.close()


Call = Callable[[httpx.AsyncClient], Any]


def _cases(basic: str, spa: str) -> dict[str, Call]:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return {
        "no client authentication": lambda c: c.post("/token", data={"grant_type": "x"}),
        "bad basic credentials": lambda c: c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic !"},
        ),
        "wrong secret": lambda c: c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic[:-4] + "AAA="},
        ),
        "not a form": lambda c: c.post("/token", json={"grant_type": "client_credentials"}),
        "repeated parameter": lambda c: c.post(
            "/token",
            content=b"grant_type=a&grant_type=b",
            headers={**form, "Authorization": basic},
        ),
        "unsupported grant": lambda c: c.post(
            "/token", data={"grant_type": "password"}, headers={"Authorization": basic}
        ),
        "public client introspects": lambda c: c.post(
            "/introspect", data={"token": "x", "client_id": spa}
        ),
        "inactive token": lambda c: c.post(
            "/introspect", data={"token": "x.y.z"}, headers={"Authorization": basic}
        ),
        "token missing": lambda c: c.post("/revoke", data={}, headers={"Authorization": basic}),
        "revocation with CORS": lambda c: c.post(
            "/revoke", data={"token": "x", "client_id": spa}, headers={"Origin": SPA_ORIGIN}
        ),
        "userinfo without token": lambda c: c.get("/userinfo"),
        "userinfo with a bad token": lambda c: c.get(
            "/userinfo", headers={"Authorization": "Bearer abc"}
        ),
        "userinfo token sent twice": lambda c: c.post(
            "/userinfo", data={"access_token": "a"}, headers={"Authorization": "Bearer b"}
        ),
        "HEAD userinfo": lambda c: c.head("/userinfo"),
        "GET token": lambda c: c.get("/token"),
        "GET token as a browser": lambda c: c.get("/token", headers={"Accept": "text/html"}),
        "trailing slash": lambda c: c.post("/token/", data={"grant_type": "x"}),
        "preflight": lambda c: c.options(
            "/token",
            headers={"Origin": SPA_ORIGIN, "Access-Control-Request-Method": "POST"},
        ),
    }


async def _answer(app: FastAPI, call: Call) -> tuple[int, list[tuple[str, str]], bytes]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"X-Request-Id": "same-id"}
    ) as c:
        response = await call(c)
    return response.status_code, response.headers.multi_items(), response.content


async def test_answers_are_byte_identical_to_fastapis(
    app: FastAPI, router_only: FastAPI, clients: dict[str, Any]
) -> None:
    for name, call in _cases(clients["basic"], clients["spa"]).items():
        fast = await _answer(app, call)
        assert fast == await _answer(router_only, call), name


async def test_a_token_response_has_the_same_headers(
    app: FastAPI, router_only: FastAPI, clients: dict[str, Any]
) -> None:
    def call(c: httpx.AsyncClient) -> Any:
        return c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": clients["basic"]},
        )

    fast_status, fast_headers, fast_body = await _answer(app, call)
    slow_status, slow_headers, _ = await _answer(router_only, call)
    assert fast_status == slow_status == 200
    without_length = [(k, v) for k, v in fast_headers if k != "content-length"]
    assert without_length == [(k, v) for k, v in slow_headers if k != "content-length"]
    assert [k for k, _ in fast_headers] == [
        "cache-control",
        "pragma",
        "content-length",
        "content-type",
        "vary",
        "x-content-type-options",
        "x-request-id",
    ]
    assert fast_headers[2] == ("content-length", str(len(fast_body)))


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("database went away"),
        PageError(400, "Not for this page."),
        HTTPException(429, "Slow down.", headers={"Retry-After": "7"}),
    ],
    ids=["unhandled", "page-error", "http-exception"],
)
async def test_exceptions_get_the_same_error_responses(
    app: FastAPI,
    router_only: FastAPI,
    clients: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    def fail(body: bytes, **options: Any) -> dict[str, str]:
        raise failure

    monkeypatch.setattr(oauth, "parse_form", fail)

    def call(c: httpx.AsyncClient) -> Any:
        return c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": clients["basic"], "Accept": "application/json"},
        )

    fast = await _answer(app, call)
    assert fast == await _answer(router_only, call)
    status, headers, body = fast
    if isinstance(failure, RuntimeError):
        # ServerErrorMiddleware's plain 500 (web/errors.py), which reveals nothing.
        assert status == 500
        assert b"database went away" not in body
        assert b"An unexpected error occurred." in body
    else:
        assert status in (400, 429)
        assert ("x-request-id", "same-id") in headers
        assert status == 400 or ("retry-after", "7") in headers
