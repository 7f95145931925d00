"""Headers every response carries (web/middleware.py), on FastAPI's routes and on the fast
lane alike: ``X-Content-Type-Options: nosniff`` always, ``Strict-Transport-Security`` (RFC 6797)
when the issuer is https; and no trailing-slash redirect built from the ``Host`` header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ostiary.features.clock import FrozenClock
from ostiary.web.app import create_app
from tests.conftest import Backend, make_settings

FORM = {"content-type": "application/x-www-form-urlencoded"}
# (method, path, body): JSON, redirects and pages; /token, /introspect, /revoke and /userinfo
# are served by the fast lane, the others by FastAPI's router.
REQUESTS = [
    ("GET", "/healthz", None),
    ("GET", "/.well-known/openid-configuration", None),
    ("GET", "/.well-known/jwks.json", None),
    ("GET", "/nope", None),
    ("POST", "/token", b"grant_type=client_credentials"),
    ("POST", "/introspect", b"token=x"),
    ("POST", "/revoke", b"token=x"),
    ("GET", "/userinfo", None),
    ("GET", "/token", None),  # 405 from the router
    ("GET", "/account", None),  # 303 to /login
    ("GET", "/authorize?client_id=x", None),
    ("GET", "/login", None),
    ("GET", "/openapi.json", None),
]


@pytest.fixture(params=["https://id.example.com", "http://127.0.0.1:8000"])
async def served(
    request: pytest.FixtureRequest, backend: Backend, tmp_path: Path, clock: FrozenClock
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    issuer = str(request.param)
    app = create_app(make_settings(backend, tmp_path, issuer=issuer), clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=issuer) as client:
            yield issuer, client
    finally:
        await app.state.runtime.close()


def _all(response: httpx.Response, name: str) -> list[str]:
    return response.headers.get_list(name)


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
async def test_every_response_carries_nosniff_and_hsts_on_https(
    served: tuple[str, httpx.AsyncClient], method: str, path: str, body: bytes | None
) -> None:
    issuer, client = served
    response = await client.request(method, path, content=body, headers=FORM if body else None)
    assert response.status_code < 500, response.text
    assert _all(response, "x-content-type-options") == ["nosniff"]
    hsts = _all(response, "strict-transport-security")
    if issuer.startswith("https://"):
        assert hsts == ["max-age=31536000"], (path, response.status_code)
    else:
        assert hsts == []  # RFC 6797 section 7.2: not over plain http


async def test_a_refused_oversized_body_carries_them_too(
    served: tuple[str, httpx.AsyncClient],
) -> None:
    issuer, client = served
    response = await client.post(
        "/token", content=b"x", headers={**FORM, "content-length": str(10**9)}
    )
    assert response.status_code == 413
    assert _all(response, "x-content-type-options") == ["nosniff"]
    assert bool(_all(response, "strict-transport-security")) == issuer.startswith("https://")


@pytest.mark.parametrize("path", ["/login/", "/token/", "/.well-known/jwks.json/", "/docs/"])
async def test_no_trailing_slash_redirect_reflecting_the_host(
    served: tuple[str, httpx.AsyncClient], path: str
) -> None:
    _, client = served
    method = "POST" if path == "/token/" else "GET"
    response = await client.request(method, path, headers={"host": "attacker.example"})
    assert response.status_code == 404, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert "attacker.example" not in response.text


async def test_pages_keep_their_own_headers(client: Any) -> None:
    page = await client.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]
