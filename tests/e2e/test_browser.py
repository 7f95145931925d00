"""A real browser (Debian's Chromium driven by Playwright) signs in, sees its session, revokes it.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``). Missing, the test is skipped with
that hint, and fails when ``OSTIARY_TEST_REQUIRE_BROWSER=1`` (set by ``scripts/check.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import require_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium for the module (one browser; each test gets a fresh context)."""
    if not CHROMIUM.exists():
        require_or_skip(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def test_sign_in_see_session_revoke_it(chromium: Any, server: Server) -> None:
    from playwright.sync_api import expect

    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        page.goto("/account")
        expect(page).to_have_url(re.compile(r"/login\?next=/account$"))
        expect(page.locator("#login-form")).to_be_visible()

        page.fill("#email", server.admin_email)
        page.fill("#password", server.admin_password)
        with page.expect_navigation():
            page.click("#sign-in")
        refused = page.locator("#login-error")
        assert refused.count() == 0, (
            f"a real browser cannot sign in: {refused.inner_text()!r} at {page.url}. "
            "Likely cause: pages sending `Referrer-Policy: no-referrer` make browsers send "
            "`Origin: null` on same-origin form POSTs, and CsrfGuard.is_valid rejects any "
            "Origin other than the issuer's (src/ostiary/web/pages.py, src/ostiary/web/csrf.py)"
        )
        expect(page).to_have_url(f"{server.base_url}/account")
        expect(page.locator("#profile-email")).to_contain_text(server.admin_email)

        current = page.locator("#sessions tr.current")
        expect(current).to_have_count(1)
        expect(current).to_contain_text("this browser")
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["ostiary_session"]["httpOnly"] is True
        assert cookies["ostiary_session"]["sameSite"] == "Lax"

        current.locator("button.revoke").click()
        expect(page).to_have_url(f"{server.base_url}/login")
        expect(page.locator("#login-form")).to_be_visible()
        assert "ostiary_session" not in {c["name"] for c in context.cookies()}

        page.goto("/account")
        expect(page).to_have_url(re.compile(r"/login\?next=/account$"))
        assert page_errors == []
    finally:
        context.close()
