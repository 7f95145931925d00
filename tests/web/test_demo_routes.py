"""The dev-only demo relying party's forms carry the CSRF token of every other page (OWASP ASVS
4.0 V4.2.2: CSRF protection on every state-changing form) and fail the same way without it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from ostiary.web.routes import demo as demo_routes
from tests.conftest import Backend, make_settings
from tests.web.helpers import csrf_from

POSTS = [
    "/demo/login",
    "/demo/refresh",
    "/demo/introspect-access",
    "/demo/introspect-refresh",
    "/demo/revoke",
    "/demo/logout",
]


@pytest.fixture
async def demo(backend: Backend, tmp_path: Path, clock: Any) -> AsyncIterator[httpx.AsyncClient]:
    from ostiary.web.app import DEV_CLIENT_FILE, create_app

    settings = make_settings(backend, tmp_path, dev_mode=True)
    (tmp_path / DEV_CLIENT_FILE).write_bytes(
        orjson.dumps(
            {
                "issuer": "http://testserver",
                "client_id": "ostiary-demo",
                "client_secret": "unused",
                "redirect_uri": "http://testserver/demo/callback",
                "post_logout_redirect_uri": "http://testserver/demo",
            }
        )
    )
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await app.state.runtime.close()


async def _refused_logout_page(client: httpx.AsyncClient) -> httpx.Response:
    """What the account pages answer to a form without a valid token."""
    response = await client.post("/logout", data={"csrf_token": "0" * 64})
    assert response.status_code == 403
    return response


async def test_every_demo_form_carries_the_csrf_token(demo: httpx.AsyncClient) -> None:
    page = await demo.get("/demo")
    assert page.status_code == 200
    assert "ostiary_csrf=" in page.headers["set-cookie"]
    token = csrf_from(page.text)
    assert page.text.count(f'name="csrf_token" value="{token}"') == page.text.count("<form")


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("sent", [None, "0" * 64, "not-a-token"])
async def test_demo_posts_without_a_valid_token_get_the_403_page(
    demo: httpx.AsyncClient, path: str, sent: str | None
) -> None:
    await demo.get("/demo")  # the browser has its CSRF cookie and a demo session
    data = {"unrelated": "1"} if sent is None else {"csrf_token": sent}
    response = await demo.post(path, data=data)
    expected = await _refused_logout_page(demo)
    assert response.status_code == 403
    assert response.headers["content-type"] == expected.headers["content-type"]
    assert response.text == expected.text
    assert "location" not in response.headers


async def test_a_token_from_another_browser_is_refused(demo: httpx.AsyncClient) -> None:
    stolen = csrf_from((await demo.get("/demo")).text)
    demo.cookies.clear()
    await demo.get("/demo")  # a new CSRF cookie: the old token no longer matches
    response = await demo.post("/demo/login", data={"csrf_token": stolen})
    assert response.status_code == 403


async def test_a_cross_origin_post_is_refused_even_with_the_token(
    demo: httpx.AsyncClient,
) -> None:
    token = csrf_from((await demo.get("/demo")).text)
    response = await demo.post(
        "/demo/login", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


async def test_the_sign_in_button_starts_the_code_flow_with_its_token(
    demo: httpx.AsyncClient,
) -> None:
    token = csrf_from((await demo.get("/demo")).text)
    response = await demo.post("/demo/login", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/authorize?response_type=code")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    # RFC 7636 section 4.2: BASE64URL(SHA256(ASCII(code_verifier))), no padding.
    verifier = demo_routes._STATE[demo.cookies["ostiary_demo"]]["verifier"]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]
