"""Chromium signs in with a password and a second factor against a real ``ostiary dev`` server.

The authenticator is set up before the browser arrives, by the MFA service run in this process
against the server's own database and deployment secret (the enrollment page is another
branch's); codes come from pyotp, the browser is Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest

from tests.e2e.harness import Server
from tests.e2e.test_browser import TIMEOUT_MS, chromium  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "correct horse battery staple 92"


def _enroll(server: Server, email: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """Set up TOTP for ``email`` in the server's database: (base32 secret, recovery codes)."""
    from ostiary.config import Settings
    from ostiary.web.runtime import Runtime

    for name, value in server.env.items():
        if name.startswith("OSTIARY_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(server.workdir)

    async def run() -> tuple[str, list[str]]:
        runtime = Runtime(Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            async with runtime.unit() as unit:
                user = await unit.accounts.get_by_email(email)
                enrollment = await unit.mfa.start_totp(user.id, email)
            # Confirmed with the previous step's code (one step of drift is accepted), so that
            # the browser's code, of the current step, is a later one and not a replay.
            earlier = pyotp.TOTP(enrollment.secret).at(datetime.now(UTC) - timedelta(seconds=30))
            async with runtime.unit() as unit:
                codes = await unit.mfa.confirm_totp(user.id, earlier, ip=None)
            return enrollment.secret, codes
        finally:
            await runtime.close()

    # Playwright's sync API runs an event loop in this thread: the service runs in another.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        result: tuple[str, list[str]] = pool.submit(asyncio.run, run()).result()
    return result


def _password_step(page: Any, email: str) -> None:
    from playwright.sync_api import expect

    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?next=/account$"))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#sign-in")
    expect(page).to_have_url(re.compile(r"/login/second-step\?next=%2Faccount$"))
    expect(page.locator("#second-step-form")).to_be_visible()


def test_password_then_authenticator_code_then_recovery_code(
    chromium: Any,  # noqa: F811
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    name = f"mfa{secrets.token_hex(2)}"
    email = server.create_users(name, password=PASSWORD)[name]
    secret, recovery = _enroll(server, email, monkeypatch)

    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        _password_step(page, email)
        assert "ostiary_session" not in {c["name"] for c in context.cookies()}
        page.fill("#code", pyotp.TOTP(secret).now())
        with page.expect_navigation():
            page.click("#verify")
        assert page.locator("#second-step-error").count() == 0, page.content()[:500]
        expect(page).to_have_url(f"{server.base_url}/account")
        expect(page.locator("#profile-email")).to_contain_text(email)
    finally:
        context.close()

    # Another browser, the recovery-code way: the page says how many are left.
    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        _password_step(page, email)
        with page.expect_navigation():
            page.click("#other-method")
        page.fill("#code", recovery[0])
        with page.expect_navigation():
            page.click("#verify")
        expect(page.locator("#recovery-left")).to_contain_text("9 recovery codes left")
        with page.expect_navigation():
            page.click("#continue")
        expect(page).to_have_url(f"{server.base_url}/account")
        expect(page.locator("#profile-email")).to_contain_text(email)
    finally:
        context.close()
