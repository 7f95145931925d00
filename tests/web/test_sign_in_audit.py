"""What the audit trail says of a sign-in (web/routes/browser.py ``login``, second_factor.py):
``login`` success only when a session starts; the right password of an account with a second
factor is ``login.password`` success until the second step is passed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pyotp
from sqlalchemy import select

from ostiary.features.clock import FrozenClock
from ostiary.storage.sqla.tables import audit_events
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "lin@example.com"


async def _events(app: Any) -> list[tuple[str, str, Any]]:
    query = (
        select(audit_events.c.action, audit_events.c.outcome, audit_events.c.details)
        .where(audit_events.c.action.like("login%"))
        .order_by(audit_events.c.seq)
    )
    async with app.state.runtime.unit() as unit:
        return [(r.action, r.outcome, r.details) for r in await unit.conn.execute(query)]


async def test_a_one_factor_sign_in_is_one_login_success(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(EMAIL, PASSWORD)
    assert (await sign_in(client, EMAIL)).headers["location"] == "/account"
    assert await _events(app) == [("login", "success", {"amr": ["pwd"]})]


async def test_the_password_step_of_a_two_factor_sign_in_is_not_a_login_success(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(EMAIL, PASSWORD)
        enrollment = await unit.mfa.start_totp(user.id, EMAIL)
        totp = pyotp.TOTP(enrollment.secret)
        await unit.mfa.confirm_totp(user.id, totp.at(clock.now()), ip=None)

    wrong = await sign_in(client, EMAIL, "not the password at all")
    assert wrong.status_code == 401
    first = await sign_in(client, EMAIL)
    assert first.headers["location"].startswith("/login/second-step")
    assert await _events(app) == [
        ("login", "failure", {"reason": "bad_credentials", "email": "l***@example.com"}),
        ("login.password", "success", {"amr": ["pwd"], "second_step": "pending"}),
    ]

    clock.advance(timedelta(seconds=30))  # a later step than the one the set-up used
    page = await client.get(first.headers["location"])
    done = await client.post(
        "/login/second-step",
        data={"code": totp.at(clock.now()), "csrf_token": csrf_from(page.text), "next": "/account"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert (await _events(app))[-1] == ("login", "success", {"amr": ["pwd", "otp", "mfa"]})
    assert [e[0] for e in await _events(app)].count("login") == 2  # the failure, then this
