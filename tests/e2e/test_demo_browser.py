"""``ostiary dev``'s built-in demo relying party (``/demo``), used in Chromium like a new user would.

The demo is a real OAuth client of the server (code + PKCE, then token, userinfo, introspection
and revocation calls over HTTP): sign in through the real sign-in and consent pages, see the
ID token and userinfo, refresh, introspect, revoke, and log out (RP-initiated logout), after
which the Ostiary session is gone too.

Needs ``/usr/bin/chromium``; skipped without it, failed when ``OSTIARY_TEST_REQUIRE_BROWSER=1``
(set by ``scripts/check.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixtures)
    TIMEOUT_MS,
    browser_sign_in,
    chromium,
    one_backend,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def admin_id(server: Server) -> str:
    """The dev admin's user id (the ``sub`` of its tokens), from the CLI."""
    listed = server.cli("users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    users: dict[str, str] = {row["email"]: row["id"] for row in orjson.loads(listed.stdout)}
    return users[server.admin_email]


@pytest.fixture
def page(chromium: Any, server: Server) -> Iterator[Any]:  # noqa: F811 (imported fixture)
    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _result(page: Any) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(page.locator("#demo-result").inner_text())
    return found


def _click(page: Any, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def test_demo_sign_in_tokens_refresh_introspect_revoke_logout(
    page: Any, server: Server, admin_id: str
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/demo")
    expect(page.locator("#demo-sign-in")).to_be_visible()

    page.click("#demo-sign-in")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.url.startswith(f"{server.base_url}/login?next=%2Fauthorize%3F"), page.url
    browser_sign_in(page, server.admin_email, server.admin_password)

    expect(page.locator("#consent-form")).to_be_visible()
    expect(page.locator("#client-name")).to_have_text("Ostiary demo app")
    _click(page, "#allow")
    expect(page).to_have_url(f"{server.base_url}/demo")
    id_token = orjson.loads(page.locator("#demo-id-token").inner_text())
    assert id_token["sub"] == admin_id
    assert id_token["aud"] == "ostiary-demo" and id_token["iss"] == server.base_url
    assert id_token["nonce"]
    userinfo = orjson.loads(page.locator("#demo-userinfo").inner_text())
    assert userinfo["sub"] == admin_id and userinfo["email"] == server.admin_email
    assert page.locator("#demo-result").count() == 0, page.locator("#demo-result").inner_text()
    before = page.locator("#demo-access-token").inner_text()

    _click(page, "#demo-refresh")
    assert _result(page) == {"refresh": 200}
    assert page.locator("#demo-access-token").inner_text() != before  # a new access token

    _click(page, "#demo-introspect")
    access = _result(page)["introspect access_token"]
    assert access["active"] is True and access["sub"] == admin_id
    assert access["client_id"] == "ostiary-demo"

    _click(page, "#demo-revoke")
    assert _result(page) == {"revoke refresh_token": 200}
    _click(page, "#demo-introspect-refresh")
    assert _result(page) == {"introspect refresh_token": {"active": False}}

    # RP-initiated logout with id_token_hint: straight back to /demo, signed out everywhere.
    _click(page, "#demo-logout")
    expect(page).to_have_url(f"{server.base_url}/demo")
    expect(page.locator("#demo-sign-in")).to_be_visible()
    assert page.locator("#demo-id-token").count() == 0
    assert "ostiary_session" not in {c["name"] for c in page.context.cookies()}
    page.goto("/account")
    expect(page).to_have_url(re.compile(re.escape(server.base_url) + r"/login\?next=/account$"))
    assert errors == [], errors
