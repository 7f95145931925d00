"""Changing the password and the e-mail address on /account in Chromium, against a real
``ostiary dev`` server: the forms as a user fills them in, the other browser signed out by the
password change (this one kept), the new password and the new address signing in, the old ones
not.

Needs ``/usr/bin/chromium``; skipped without it, failed when ``OSTIARY_TEST_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixtures)
    TIMEOUT_MS,
    browser_sign_in,
    chromium,
    csp_blocked,
    one_backend,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "the first passphrase of 2026"
NEW_PASSWORD = "a second passphrase, longer 77"


def _signed_in_page(browser: Any, server: Server, email: str, password: str) -> Any:
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/account")
    browser_sign_in(page, email, password)
    return page


def _refused(browser: Any, server: Server, email: str, password: str) -> bool:
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto("/login")
        page.fill("#email", email)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("#sign-in")
        return bool(page.locator("#login-error").count())
    finally:
        context.close()


def test_change_the_password_then_the_email_address(
    chromium: Any,  # noqa: F811 (the imported fixture)
    server: Server,
) -> None:
    from playwright.sync_api import expect

    email = server.create_users("changer", password=PASSWORD)["changer"]
    page = _signed_in_page(chromium, server, email, PASSWORD)
    elsewhere = _signed_in_page(chromium, server, email, PASSWORD)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        with page.expect_navigation():
            page.click("#change-password")
        expect(page).to_have_url(f"{server.base_url}/account/password")
        page.fill("#current_password", PASSWORD)
        page.fill("#new_password", NEW_PASSWORD)
        page.fill("#confirm_password", NEW_PASSWORD)
        with page.expect_navigation():
            page.click("button#change-password")
        expect(page.locator("#password-changed")).to_be_visible()  # this browser stays

        elsewhere.goto("/account")  # the other one was signed out
        expect(elsewhere).to_have_url(f"{server.base_url}/login?next=/account")
        assert _refused(chromium, server, email, PASSWORD)
        assert not _refused(chromium, server, email, NEW_PASSWORD)

        new_email = f"moved-{email}"
        with page.expect_navigation():
            page.click("#change-email")
        page.fill("#email", new_email.upper())
        page.fill("#current_password", NEW_PASSWORD)
        with page.expect_navigation():
            page.click("button#change-email")
        expect(page.locator("#email-changed")).to_be_visible()
        expect(page.locator("#profile-email")).to_have_text(new_email)  # normalized, unverified
        assert not _refused(chromium, server, new_email, NEW_PASSWORD)
        assert _refused(chromium, server, email, NEW_PASSWORD)
        assert csp_blocked(console) == []
    finally:
        page.context.close()
        elsewhere.context.close()
