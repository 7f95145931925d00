"""Setting up an authenticator app (RFC 6238) on /account/security in Chromium, against a real
``ostiary dev`` server: the secret is read from the page as a user would type it into an app,
pyotp (the independent authenticator) computes the code, and the ten recovery codes are shown
once. The page's CSP must let the inline SVG QR code render without a violation.

Needs ``/usr/bin/chromium``; skipped without it, failed when ``OSTIARY_TEST_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp
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


def test_set_up_an_authenticator_app_and_see_the_recovery_codes_once(
    chromium: Any,  # noqa: F811 (the imported fixture)
    server: Server,
) -> None:
    from playwright.sync_api import expect

    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        page.goto("/account")
        browser_sign_in(page, server.admin_email, server.admin_password)
        with page.expect_navigation():
            page.click("#security")
        expect(page).to_have_url(f"{server.base_url}/account/security")
        expect(page.locator("#totp-status")).to_contain_text("Off")

        with page.expect_navigation():
            page.click("#start-totp")
        expect(page).to_have_url(f"{server.base_url}/account/security/totp")
        qr = page.locator("#totp-qr svg")
        expect(qr).to_be_visible()
        box = qr.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
        secret = page.locator("#totp-secret").inner_text().strip()
        assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
        uri = pyotp.parse_uri(page.locator("#totp-uri").inner_text().strip())
        assert uri.secret == secret and uri.name == server.admin_email

        page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
        with page.expect_navigation():
            page.click("#confirm-totp")
        expect(page.locator("#totp-error")).to_be_visible()
        assert page.locator("#totp-secret").inner_text().strip() == secret  # same secret

        page.fill("#code", pyotp.TOTP(secret).now())
        with page.expect_navigation():
            page.click("#confirm-totp")
        expect(page.locator("#totp-on")).to_be_visible()
        codes = page.locator("#recovery-codes li").all_inner_texts()
        assert len(codes) == 10 and len(set(codes)) == 10

        with page.expect_navigation():
            page.click("#codes-done")
        expect(page.locator("#totp-status")).to_contain_text("On")
        expect(page.locator("#recovery-left")).to_have_text("10")
        html = page.content()
        assert not any(code.strip() in html for code in codes)  # shown once only
        assert csp_blocked(console) == []
    finally:
        context.close()
