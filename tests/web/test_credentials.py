"""/account/password and /account/email (web/routes/credentials.py), in-process over ASGI: the
current password confirms each change (throttled as a sign-in is, audited), a new password ends
the other sessions and signs in where the old one no longer does, a new address is unverified
and signs in, CSRF and the re-authentication gate guard both forms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from ostiary.features.clock import FrozenClock
from ostiary.storage.sqla.tables import audit_events
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "ada@example.com"
NEW_PASSWORD = "a brand new passphrase 4417"


@pytest.fixture
async def user(app: Any) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.create_user(
            EMAIL, PASSWORD, name="Ada Lovelace", email_verified=True
        )


@pytest.fixture
async def other_browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _audit(app: Any, action: str) -> list[Any]:
    async with app.state.runtime.unit() as unit:
        query = select(audit_events).where(audit_events.c.action == action)
        return list((await unit.conn.execute(query.order_by(audit_events.c.seq))).all())


async def _stored(app: Any, user_id: str) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.get(user_id)


async def _change_password(
    client: httpx.AsyncClient,
    current: str = PASSWORD,
    new: str = NEW_PASSWORD,
    confirm: str | None = None,
) -> httpx.Response:
    page = await client.get("/account/password")
    assert page.status_code == 200, page.text
    return await client.post(
        "/account/password",
        data={
            "csrf_token": csrf_from(page.text),
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        },
    )


async def _change_email(
    client: httpx.AsyncClient, email: str, current: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/account/email")
    assert page.status_code == 200, page.text
    return await client.post(
        "/account/email",
        data={"csrf_token": csrf_from(page.text), "email": email, "current_password": current},
    )


async def _signs_in(app: Any, email: str, password: str) -> int:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 50002))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as fresh:
        return (await sign_in(fresh, email, password)).status_code


# -- both pages -------------------------------------------------------------------------------


async def test_both_pages_need_a_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/account/password", "/account/email"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"


async def test_account_page_links_both_pages(client: httpx.AsyncClient, user: Any) -> None:
    await sign_in(client, EMAIL)
    page = (await client.get("/account")).text
    assert 'href="/account/password"' in page and 'href="/account/email"' in page


async def test_signed_out_and_forged_forms_are_refused(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    login = await client.get("/login")
    form = {"csrf_token": csrf_from(login.text), "current_password": PASSWORD}
    for path, extra in (
        ("/account/password", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}),
        ("/account/email", {"email": "new@example.com"}),
    ):
        assert (await client.post(path, data={**form, **extra})).status_code == 401
    await sign_in(client, EMAIL)
    for path, extra in (
        ("/account/password", {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}),
        ("/account/email", {"email": "new@example.com"}),
    ):
        forged = {**form, **extra, "csrf_token": "0" * 64}
        assert (await client.post(path, data=forged)).status_code == 403, path
    stored = await _stored(app, user.id)
    assert stored.email == EMAIL and stored.password_hash == user.password_hash


async def test_an_old_sign_in_is_asked_to_sign_in_again(
    app: Any, client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    pages = {path: await client.get(path) for path in ("/account/password", "/account/email")}
    clock.advance(timedelta(seconds=app.state.runtime.settings.reauth_seconds + 1))
    for path, page in pages.items():
        for response in (
            await client.get(path),
            await client.post(
                path,
                data={
                    "csrf_token": csrf_from(page.text),
                    "current_password": PASSWORD,
                    "new_password": NEW_PASSWORD,
                    "confirm_password": NEW_PASSWORD,
                    "email": "new@example.com",
                },
            ),
        ):
            assert response.status_code == 303
            location = urlsplit(response.headers["location"])
            assert location.path == "/login"
            assert parse_qs(location.query) == {
                "next": [path],
                "reauth": ["1"],
                "login_hint": [EMAIL],
            }
    stored = await _stored(app, user.id)
    assert stored.email == EMAIL and stored.password_hash == user.password_hash
    # Signing in again (a fresh auth_time) opens the gate.
    again = await client.get("/login?reauth=1&next=/account/password")
    done = await client.post(
        "/login",
        data={
            "email": EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_from(again.text),
            "next": "/account/password",
        },
    )
    assert done.headers["location"] == "/account/password"
    assert (await client.get("/account/password")).status_code == 200


# -- the password -----------------------------------------------------------------------------


async def test_password_change_ends_the_other_sessions_and_the_new_password_signs_in(
    app: Any, client: httpx.AsyncClient, other_browser: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    await sign_in(other_browser, EMAIL)
    assert (await other_browser.get("/account")).status_code == 200

    changed = await _change_password(client)
    assert changed.status_code == 303
    assert changed.headers["location"] == "/account?notice=password_changed"
    account = await client.get(changed.headers["location"])
    assert account.status_code == 200 and 'id="password-changed"' in account.text  # kept
    assert account.text.count('data-sid="') == 1  # the one session left
    ended = await other_browser.get("/account")
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")

    assert await _signs_in(app, EMAIL, PASSWORD) == 401
    assert await _signs_in(app, EMAIL, NEW_PASSWORD) == 303
    events = await _audit(app, "account.password.changed")
    assert [(e.outcome, e.actor, e.target) for e in events] == [("success", user.id, user.id)]
    revoked = await _audit(app, "session.revoke_all")
    assert revoked[-1].details == {"count": 1, "reason": "password_change"}


async def test_wrong_current_password_is_401_audited_and_throttled_like_a_sign_in(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    limit = app.state.runtime.settings.login_account_failures
    for _ in range(limit):
        refused = await _change_password(client, current="not my password at all")
        assert refused.status_code == 401
        assert "The current password is not correct." in refused.text
        assert 'aria-invalid="true"' in refused.text
    throttled = await _change_password(client)  # even the right password waits now
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert (await _stored(app, user.id)).password_hash == user.password_hash
    events = await _audit(app, "account.password.changed")
    assert [e.details["reason"] for e in events] == ["bad_password"] * limit + ["throttled"]
    assert all(e.outcome == "failure" and e.target == user.id for e in events)
    assert not any("not my password" in str(e.details) for e in events)


async def test_new_password_must_match_and_meet_the_policy(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    mismatch = await _change_password(client, confirm=NEW_PASSWORD + "x")
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    # The user's own details count as guessable words (zxcvbn user inputs).
    for weak in ("short", "Ada Lovelace12", "ada@example.com!"):
        refused = await _change_password(client, new=weak)
        assert refused.status_code == 400, weak
        assert 'id="password-error"' in refused.text
    assert (await _stored(app, user.id)).password_hash == user.password_hash
    assert await _audit(app, "account.password.changed") == []  # no password was checked


# -- the e-mail address -----------------------------------------------------------------------


async def test_email_change_is_unverified_keeps_sessions_and_signs_in(
    app: Any, client: httpx.AsyncClient, other_browser: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    await sign_in(other_browser, EMAIL)
    changed = await _change_email(client, "  Ada.King@Example.ORG ")
    assert changed.status_code == 303
    assert changed.headers["location"] == "/account?notice=email_changed"
    account = await client.get(changed.headers["location"])
    assert 'id="email-changed"' in account.text and "ada.king@example.org" in account.text
    assert (await other_browser.get("/account")).status_code == 200  # sessions stay

    stored = await _stored(app, user.id)
    assert stored.email == "ada.king@example.org" and stored.email_verified is False
    assert await _signs_in(app, "ada.king@example.org", PASSWORD) == 303
    assert await _signs_in(app, EMAIL, PASSWORD) == 401
    events = await _audit(app, "account.email.changed")
    assert [(e.outcome, e.details) for e in events] == [
        ("success", {"from": "a***@example.com", "to": "a***@example.org"})
    ]


async def test_a_taken_address_is_409_and_changes_nothing(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user("grace@example.com", PASSWORD)
    await sign_in(client, EMAIL)
    taken = await _change_email(client, "GRACE@example.com")
    assert taken.status_code == 409
    assert "not available" in taken.text and "already exists" not in taken.text
    stored = await _stored(app, user.id)
    assert stored.email == EMAIL and stored.email_verified is True
    events = await _audit(app, "account.email.changed")
    assert [(e.outcome, e.details["reason"]) for e in events] == [("failure", "taken")]


async def test_email_change_needs_the_current_password_and_a_valid_new_address(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user("grace@example.com", PASSWORD)
    await sign_in(client, EMAIL)
    # A wrong password is told before whether the address is taken.
    wrong = await _change_email(client, "grace@example.com", current="wrong password here")
    assert wrong.status_code == 401 and "The current password is not correct." in wrong.text
    for bad in ("not-an-address", "a@b", "x" * 250 + "@example.com", EMAIL.upper()):
        refused = await _change_email(client, bad)
        assert refused.status_code == 400, bad
    stored = await _stored(app, user.id)
    assert stored.email == EMAIL and stored.email_verified is True
    events = await _audit(app, "account.email.changed")
    assert [(e.outcome, e.details["reason"]) for e in events] == [("failure", "bad_password")]
