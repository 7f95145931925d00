"""``ostiary users reset-mfa`` and ``users disable`` (cli/users.py) end every session of the user,
on every node: a server running over the same database (another runtime, as another node or
process is) no longer accepts the sessions; the output says how many ended; audited."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from ostiary.config import Settings
from ostiary.storage.sqla.tables import audit_events
from tests.cli._support import KEY, run
from tests.conftest import in_thread
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "m@example.com"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OSTIARY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _invoke(data_dir: Path, *args: str) -> Any:
    env = {"OSTIARY_DATA_DIR": str(data_dir), "OSTIARY_SECRET_KEY": KEY}
    return in_thread(run, env, *args)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Any]:
    """A server's app over the CLI's SQLite database, with one user."""
    from ostiary.web.app import create_app

    data_dir = tmp_path / "d"
    assert _invoke(data_dir, "migrate").exit_code == 0
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        secret_key=KEY,
        issuer="http://testserver",
    )
    app = create_app(settings)
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(EMAIL, PASSWORD)
    app.state.data_dir = data_dir
    yield app
    await app.state.runtime.close()


async def _browser(app: Any, n: int) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(f"192.0.2.{n}", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _audit(app: Any, action: str) -> list[Any]:
    async with app.state.runtime.unit() as unit:
        query = select(audit_events).where(audit_events.c.action == action)
        return list((await unit.conn.execute(query.order_by(audit_events.c.seq))).all())


async def test_reset_mfa_ends_every_session_of_the_user(node: Any) -> None:
    async with node.state.runtime.unit() as unit:
        user = await unit.accounts.get_by_email(EMAIL)
        enrollment = await unit.mfa.start_totp(user.id, EMAIL)
        totp = pyotp.TOTP(enrollment.secret)
        await unit.mfa.confirm_totp(user.id, totp.at(node.state.runtime.clock.now()), ip=None)
        # Two sessions signed in with the factor (the second step is tested elsewhere).
        cookies = [
            (await unit.sessions.start(user.id, ["pwd", "otp", "mfa"], ip=None, user_agent=None))[0]
            for _ in range(2)
        ]
    cookie_name = node.state.runtime.settings.sessions.cookie_name
    browsers = [await _browser(node, n) for n in (1, 2)]
    try:
        for browser, cookie in zip(browsers, cookies, strict=True):
            browser.cookies.set(cookie_name, cookie)
            assert (await browser.get("/account")).status_code == 200

        reset = _invoke(node.state.data_dir, "users", "reset-mfa", EMAIL, "--json")
        assert reset.exit_code == 0, reset.output
        data = json.loads(reset.stdout)
        assert data["sessions_ended"] == 2
        assert data["removed"] == {"totp": True, "recovery_codes_left": 10, "passkeys": 0}

        for browser in browsers:  # this node learns of it at its next request
            ended = await browser.get("/account")
            assert ended.status_code == 303 and ended.headers["location"].startswith("/login")
    finally:
        for browser in browsers:
            await browser.aclose()
    revoked = await _audit(node, "session.revoke_all")
    assert [(r.actor, r.details) for r in revoked] == [("cli", {"count": 2, "reason": "mfa_reset"})]
    again = _invoke(node.state.data_dir, "users", "reset-mfa", EMAIL)
    assert again.exit_code == 0
    assert f"{EMAIL} had no second factor; 0 session(s) ended" in again.stdout


async def test_reset_mfa_text_says_how_many_sessions_ended(node: Any) -> None:
    browser = await _browser(node, 3)
    try:
        assert (await sign_in(browser, EMAIL)).status_code == 303
        async with node.state.runtime.unit() as unit:
            user = await unit.accounts.get_by_email(EMAIL)
            enrollment = await unit.mfa.start_totp(user.id, EMAIL)
            code = pyotp.TOTP(enrollment.secret).at(node.state.runtime.clock.now())
            await unit.mfa.confirm_totp(user.id, code, ip=None)
        reset = _invoke(node.state.data_dir, "users", "reset-mfa", EMAIL)
        assert reset.exit_code == 0, reset.output
        assert reset.stdout.strip() == (
            f"removed the authenticator app and 10 recovery code(s) of {EMAIL}; 1 session(s) ended"
        )
        assert (await browser.get("/account")).status_code == 303
        # The password alone signs in again now.
        page = await browser.get("/login")
        signed = await browser.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/account"
    finally:
        await browser.aclose()


async def test_disable_ends_every_session_and_says_so(node: Any) -> None:
    browser = await _browser(node, 4)
    try:
        assert (await sign_in(browser, EMAIL)).status_code == 303
        disabled = _invoke(node.state.data_dir, "users", "disable", EMAIL, "--json")
        assert disabled.exit_code == 0, disabled.output
        data = json.loads(disabled.stdout)
        assert data["disabled"] is True
        assert data["sessions_ended"] == 1 and data["sessions_revoked"] == 1
        assert (await browser.get("/account")).status_code == 303
    finally:
        await browser.aclose()
    revoked = await _audit(node, "session.revoke_all")
    assert [r.details["reason"] for r in revoked] == ["user_disabled"]
    assert [r.actor for r in await _audit(node, "user.disable")] == ["cli"]
