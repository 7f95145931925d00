"""CSRF tokens are signed double-submit tokens bound to the session (web/csrf.py).

OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie": the token is an HMAC of the
session and the browser's random cookie. A token seen or planted before sign-in stops working
at sign-in; a token of one session does not validate for another, even with the same CSRF
cookie (planted by an attacker); anonymous forms (sign-in) keep their pre-session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from ostiary.web.csrf import CsrfGuard
from tests.protocol.test_pinned_derivations import PINNED_KEYS
from tests.web.helpers import PASSWORD, csrf_from, sign_in

ADA = "ada@example.com"
EVE = "eve@example.com"
CSRF_COOKIE = "ostiary_csrf"


@pytest.fixture
async def users(app: Any) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(ADA, PASSWORD, name="Ada")
        await unit.accounts.create_user(EVE, PASSWORD, name="Eve")


def _browser(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _token(browser: httpx.AsyncClient, page: str) -> str:
    response = await browser.get(page)
    assert response.status_code == 200, response.status_code
    return csrf_from(response.text)


async def test_the_token_changes_at_sign_in_and_the_old_one_stops_working(
    app: Any, users: None
) -> None:
    async with _browser(app) as browser:
        before = await _token(browser, "/login")
        assert (await sign_in(browser, ADA)).status_code == 303
        after = await _token(browser, "/account")
        assert after != before
        refused = await browser.post("/logout", data={"csrf_token": before})
        assert refused.status_code == 403
        assert (await browser.get("/account")).status_code == 200  # still signed in
        signed_out = await browser.post("/logout", data={"csrf_token": after})
        assert signed_out.status_code == 303


async def test_a_token_planted_before_sign_in_is_refused_after_it(app: Any, users: None) -> None:
    """The attacker plants its CSRF cookie in the victim's browser and knows the anonymous
    token for it (it loaded /login with that cookie); once the victim signs in, the token
    is worthless."""
    async with _browser(app) as attacker, _browser(app) as victim:
        planted_token = await _token(attacker, "/login")
        victim.cookies.set(CSRF_COOKIE, attacker.cookies[CSRF_COOKIE])
        assert (await sign_in(victim, ADA)).status_code == 303
        forged = await victim.post(
            "/account/sessions/revoke-others", data={"csrf_token": planted_token}
        )
        assert forged.status_code == 403


async def test_a_token_of_one_session_does_not_validate_for_another(app: Any, users: None) -> None:
    """Eve signs in with the CSRF cookie she planted in Ada's browser: her token, valid for
    her own session, is refused in Ada's."""
    async with _browser(app) as eve, _browser(app) as ada:
        await eve.get("/login")
        ada.cookies.set(CSRF_COOKIE, eve.cookies[CSRF_COOKIE])
        assert (await sign_in(eve, EVE)).status_code == 303
        assert (await sign_in(ada, ADA)).status_code == 303
        assert eve.cookies[CSRF_COOKIE] == ada.cookies[CSRF_COOKIE]
        eve_token = await _token(eve, "/account")
        forged = await ada.post("/logout", data={"csrf_token": eve_token})
        assert forged.status_code == 403
        assert (await ada.get("/account")).status_code == 200
        own = await eve.post("/logout", data={"csrf_token": eve_token})
        assert own.status_code == 303


async def test_the_sign_in_form_is_protected_by_its_pre_session_cookie(
    app: Any, users: None
) -> None:
    async with _browser(app) as browser, _browser(app) as other:
        page = await browser.get("/login")
        assert CSRF_COOKIE in page.cookies  # set with the anonymous form
        others_token = await _token(other, "/login")
        data = {"email": ADA, "password": PASSWORD, "csrf_token": others_token}
        assert (await browser.post("/login", data=data)).status_code == 403
        browser.cookies.delete(CSRF_COOKIE)
        data["csrf_token"] = csrf_from(page.text)
        assert (await browser.post("/login", data=data)).status_code == 403  # no cookie
        assert (await browser.get("/account")).status_code == 303


def _request(cookie: str) -> Request:
    headers = [(b"cookie", cookie.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    ("session", "pinned"),
    [
        ("s3ss10n", "a2d8e331d6e55ad247faff125b6ac1d58ea4abdf5af9107655433875e3e3ad80"),
        ("", "a6c273412ae631eceb5b7f78665f207fcfb099c4487fc5673411a2046cc73bc7"),
    ],
)
def test_the_token_is_hmac_of_the_length_prefixed_session_and_cookie(
    session: str, pinned: str
) -> None:
    """Pinned on 2026-12-03 (the tokens of the pages open in browsers must survive an upgrade):
    hex HMAC-SHA256 under the ``ostiary/csrf`` key of ``csrf-v2``, then the session cookie and
    the CSRF cookie, each as ``<length in bytes>:<value>`` (an empty session before sign-in)."""
    key = bytes.fromhex(PINNED_KEYS["ostiary/csrf"])
    guard = CsrfGuard(
        key, secure=False, issuer_origin="http://testserver", session_cookie="ostiary_session"
    )
    browser = "b" * 43
    cookie = f"{CSRF_COOKIE}={browser}" + (f"; ostiary_session={session}" if session else "")
    message = b"csrf-v2%d:%s43:%s" % (len(session), session.encode(), browser.encode())
    assert hmac.new(key, message, hashlib.sha256).hexdigest() == pinned
    assert guard.token_for(_request(cookie)) == (pinned, None)
    assert guard.is_valid(_request(cookie), pinned)
