"""Browser sign-in over real HTTP with an independent client (httpx), following the HTML forms.

Covers the README's browser surface: sign-in and sign-out, the account page's session list,
revoking one session and "sign out everywhere else", CSRF on every form, no open redirects,
one generic failure message, and per-account throttling (OWASP ASVS 4.0 V2.2, V3.3, V4.2.2,
V5.1.5).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.e2e.harness import Server, ServerFactory
from tests.e2e.httpflow import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    STRONG_PASSWORD,
    SessionRow,
    find_form,
    login_error,
    session_rows,
    sign_in,
    submit,
)

pytestmark = pytest.mark.e2e
DEVICE_COOKIE = "ostiary_device"

USERS = (
    "signin",
    "origin",
    "xorigin",
    "badpw",
    "redirect",
    "localnext",
    "csrf",
    "csrfbound",
    "elsewhere",
    "revoke",
    "revokecsrf",
    "logout",
    "logoutcsrf",
)


@pytest.fixture(scope="module")
def users(server: Server) -> dict[str, str]:
    """One account per test (created with the CLI), so no test sees another's sessions."""
    return server.create_users(*USERS, password=STRONG_PASSWORD)


@contextmanager
def _signed_in(server: Server, email: str) -> Iterator[httpx.Client]:
    """A fresh client (own cookie jar) signed in as ``email``."""
    with server.client() as client:
        response = sign_in(client, email, STRONG_PASSWORD)
        assert response.status_code == 303, (response.status_code, login_error(response.text))
        assert response.headers["location"] == "/account"
        yield client


def _current_row(page: str) -> SessionRow:
    current = [row for row in session_rows(page) if row.current]
    assert len(current) == 1, session_rows(page)
    return current[0]


def _assert_sent_to_login(response: httpx.Response) -> None:
    assert response.status_code == 303, (response.status_code, response.text[:500])
    assert response.headers["location"].startswith("/login"), response.headers["location"]


def test_sign_in_redirects_to_account_listing_the_session(
    server: Server, users: dict[str, str]
) -> None:
    with server.client() as client:
        response = sign_in(client, users["signin"], STRONG_PASSWORD)
        assert response.status_code == 303
        assert response.headers["location"] == "/account"
        assert response.headers.get("cache-control") == "no-store"
        set_cookie = response.headers.get("set-cookie", "")
        assert f"{SESSION_COOKIE}=" in set_cookie
        assert "httponly" in set_cookie.lower()
        assert "samesite=lax" in set_cookie.lower()
        assert client.cookies.get(SESSION_COOKIE)

        account = client.get("/account")
        assert account.status_code == 200
        assert users["signin"] in account.text
        rows = session_rows(account.text)
        assert len(rows) == 1, rows
        assert rows[0].current
        assert rows[0].sid

        # Signed in, /login goes straight on to the account page.
        again = client.get("/login")
        assert again.status_code == 303
        assert again.headers["location"] == "/account"


def _browser_origin(page: httpx.Response, base_url: str) -> str:
    """The ``Origin`` a browser sends when it submits this page's form to its own origin.

    Fetch Standard, "serializing a request origin": for a POST, ``null`` when the request's
    referrer policy is ``no-referrer``; the page's origin for the other policies (same origin,
    no https->http downgrade). The page's ``Referrer-Policy`` header sets that policy.
    """
    policy = page.headers.get("referrer-policy", "").split(",")[-1].strip().lower()
    return "null" if policy == "no-referrer" else base_url


def test_sign_in_with_the_origin_header_a_browser_sends(
    server: Server, users: dict[str, str]
) -> None:
    """With ``Referrer-Policy: no-referrer`` browsers would send ``Origin: null`` on the
    sign-in POST, which the CSRF guard refuses (it accepts the issuer's Origin only): the
    pages' policy must let a real browser sign in (see test_browser.py)."""
    with server.client() as client:
        page = client.get("/login")
        origin = _browser_origin(page, server.base_url)
        form = find_form(page.text, "/login")
        client.headers["Origin"] = origin
        response = submit(client, form, email=users["origin"], password=STRONG_PASSWORD)
        assert response.status_code == 303, (
            f"a same-origin sign-in POST with the Origin a browser sends ({origin!r}, from "
            f"Referrer-Policy {page.headers.get('referrer-policy')!r}) was refused with "
            f"{response.status_code}: {login_error(response.text)!r}"
        )
        assert response.headers["location"] == "/account"


def test_cross_origin_post_is_refused_even_with_a_valid_token(
    server: Server, users: dict[str, str]
) -> None:
    with server.client() as client:
        form = find_form(client.get("/login").text, "/login")
        client.headers["Origin"] = "https://evil.example"
        response = submit(client, form, email=users["xorigin"], password=STRONG_PASSWORD)
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies


def test_wrong_password_and_unknown_email_get_the_same_401(
    server: Server, users: dict[str, str]
) -> None:
    with server.client() as client:
        wrong = sign_in(client, users["badpw"], "not-the-right-password-17")
        unknown = sign_in(client, "nobody-at-all@example.com", "not-the-right-password-17")
    assert wrong.status_code == 401
    assert unknown.status_code == 401
    assert login_error(wrong.text)
    assert login_error(wrong.text) == login_error(unknown.text)
    assert SESSION_COOKIE not in wrong.cookies
    assert SESSION_COOKIE not in unknown.cookies
    # The page keeps the e-mail typed, never the password.
    assert "not-the-right-password-17" not in wrong.text


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ],
)
def test_no_open_redirect_after_sign_in(server: Server, users: dict[str, str], evil: str) -> None:
    with server.client() as client:
        # The page must not echo the foreign target into the form ...
        page = client.get("/login", params={"next": evil})
        assert page.status_code == 200
        assert find_form(page.text, "/login").fields["next"] == "/account"
        # ... and a forged form field must not be honoured either.
        response = sign_in(client, users["redirect"], STRONG_PASSWORD, next=evil)
        assert response.status_code == 303
        assert response.headers["location"] == "/account"
        landed = client.get(response.headers["location"])
        assert landed.status_code == 200
        # Already signed in: GET /login?next=... redirects at once, still only locally.
        again = client.get("/login", params={"next": evil})
        assert again.status_code == 303
        assert again.headers["location"] == "/account"


def test_local_next_is_honoured(server: Server, users: dict[str, str]) -> None:
    """The control for the open-redirect test: a local path does survive the sign-in."""
    with server.client() as client:
        response = sign_in(
            client, users["localnext"], STRONG_PASSWORD, next_param="/account?from=e2e"
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/account?from=e2e"


@pytest.mark.parametrize("token", [None, "0" * 64, ""])
def test_post_login_without_valid_csrf_token_is_403(
    server: Server, users: dict[str, str], token: str | None
) -> None:
    with server.client() as client:
        response = sign_in(client, users["csrf"], STRONG_PASSWORD, csrf_token=token)
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies
        assert client.get("/account").status_code == 303


def test_csrf_token_is_bound_to_the_browser_cookie(server: Server, users: dict[str, str]) -> None:
    """A token lifted from one browser's page is useless in another browser."""
    with server.client() as victim, server.client() as attacker:
        page = attacker.get("/login")
        form = find_form(page.text, "/login")
        victim.get("/login")  # the victim has a csrf cookie of its own
        assert victim.cookies.get(CSRF_COOKIE) != attacker.cookies.get(CSRF_COOKIE)
        response = submit(victim, form, email=users["csrfbound"], password=STRONG_PASSWORD)
        assert response.status_code == 403


def test_sign_out_everywhere_else_ends_the_other_session(
    server: Server, users: dict[str, str]
) -> None:
    email = users["elsewhere"]
    with _signed_in(server, email) as first, _signed_in(server, email) as second:
        page = first.get("/account")
        assert page.status_code == 200
        rows = session_rows(page.text)
        assert len(rows) == 2, rows
        assert sum(row.current for row in rows) == 1
        assert second.get("/account").status_code == 200

        response = submit(first, find_form(page.text, "/account/sessions/revoke-others"))
        assert response.status_code == 303
        assert response.headers["location"] == "/account?notice=signed_out_elsewhere"

        _assert_sent_to_login(second.get("/account"))
        still = first.get("/account")
        assert still.status_code == 200
        rows = session_rows(still.text)
        assert [row.current for row in rows] == [True]


def test_revoking_the_current_session_signs_out(server: Server, users: dict[str, str]) -> None:
    with _signed_in(server, users["revoke"]) as client:
        old_cookie = client.cookies[SESSION_COOKIE]
        page = client.get("/account")
        row = _current_row(page.text)
        form = find_form(page.text, f"/account/sessions/{row.sid}/revoke")
        response = submit(client, form)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        _assert_sent_to_login(client.get("/account"))
    with server.client(cookies={SESSION_COOKIE: old_cookie}) as replay:
        _assert_sent_to_login(replay.get("/account"))


def test_revoke_form_needs_csrf(server: Server, users: dict[str, str]) -> None:
    with _signed_in(server, users["revokecsrf"]) as client:
        page = client.get("/account")
        row = _current_row(page.text)
        form = find_form(page.text, f"/account/sessions/{row.sid}/revoke")
        response = submit(client, form, csrf_token=None)
        assert response.status_code == 403
        assert client.get("/account").status_code == 200


def test_logout_ends_the_session_and_the_old_cookie_is_dead(
    server: Server, users: dict[str, str]
) -> None:
    with _signed_in(server, users["logout"]) as client:
        old_cookie = client.cookies[SESSION_COOKIE]
        page = client.get("/account")
        response = submit(client, find_form(page.text, "/logout"))
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        # The cookie is cleared in the browser ...
        assert f'{SESSION_COOKIE}=""' in response.headers.get("set-cookie", "") or (
            "max-age=0" in response.headers.get("set-cookie", "").lower()
        )
        _assert_sent_to_login(client.get("/account"))
    # ... and a copy of it kept by an attacker no longer works on the server.
    with server.client(cookies={SESSION_COOKIE: old_cookie}) as replay:
        _assert_sent_to_login(replay.get("/account"))


def test_logout_without_csrf_is_refused(server: Server, users: dict[str, str]) -> None:
    with _signed_in(server, users["logoutcsrf"]) as client:
        page = client.get("/account")
        response = submit(client, find_form(page.text, "/logout"), csrf_token=None)
        assert response.status_code == 403
        assert client.get("/account").status_code == 200


def test_account_failures_are_throttled_with_retry_after(server_factory: ServerFactory) -> None:
    srv = server_factory(OSTIARY_LOGIN_ACCOUNT_FAILURES="3")
    with srv.client() as client:
        statuses = [
            sign_in(client, srv.admin_email, f"wrong-password-attempt-{i}").status_code
            for i in range(3)
        ]
        assert statuses == [401, 401, 401]

        fourth = sign_in(client, srv.admin_email, "wrong-password-attempt-3")
        assert fourth.status_code == 429, fourth.text[:500]
        retry_after = fourth.headers.get("retry-after")
        assert retry_after is not None, fourth.headers
        assert retry_after.isdigit(), retry_after
        assert 1 <= int(retry_after) <= 900
        assert login_error(fourth.text)

        # While throttled even the right password is refused (no oracle for guessing) ...
        right = sign_in(client, srv.admin_email, srv.admin_password)
        assert right.status_code == 429
        assert SESSION_COOKIE not in right.cookies
        # ... but the limit is per account: another account still gets the normal answer.
        other = sign_in(client, "someone-else@example.com", "wrong-password-attempt-0")
        assert other.status_code == 401


def _ip_bucket_statuses(srv: Server, forwarded_for: str, attempts: int) -> list[int]:
    """Wrong passwords for fresh accounts (so only the per-address limit binds)."""
    with srv.client(headers={"X-Forwarded-For": forwarded_for}) as client:
        return [
            sign_in(client, f"nobody-{forwarded_for}-{i}@example.com", "wrong-password").status_code
            for i in range(attempts)
        ]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(server_factory: ServerFactory) -> None:
    # The test client connects from 127.0.0.1, which this server does not trust as a proxy.
    srv = server_factory(OSTIARY_LOGIN_IP_FAILURES="2", OSTIARY_FORWARDED_ALLOW_IPS="192.0.2.1")
    assert _ip_bucket_statuses(srv, "198.51.100.1", 3) == [401, 401, 429]
    # Claiming another address does not buy a fresh bucket: it is still 127.0.0.1's.
    assert _ip_bucket_statuses(srv, "198.51.100.2", 1) == [429]


def test_forwarded_for_from_a_trusted_proxy_gives_each_client_its_bucket(
    server_factory: ServerFactory,
) -> None:
    # Default OSTIARY_FORWARDED_ALLOW_IPS: loopback, i.e. this client acts as a local proxy.
    srv = server_factory(OSTIARY_LOGIN_IP_FAILURES="2")
    assert _ip_bucket_statuses(srv, "198.51.100.1", 3) == [401, 401, 429]
    assert _ip_bucket_statuses(srv, "198.51.100.2", 1) == [401]
    # The proxy appends the address it saw; what the client wrote before it is not believed.
    assert _ip_bucket_statuses(srv, "198.51.100.3, 198.51.100.1", 1) == [429]


def test_concurrent_guesses_get_at_most_the_limit_of_password_checks(
    server_factory: ServerFactory,
) -> None:
    # Issue 9 item 1, over real HTTP: every guess in flight at once. A 401 is a password that
    # was checked; an attempt is counted before its check, so no more than the limit are.
    srv = server_factory(OSTIARY_LOGIN_ACCOUNT_FAILURES="3")

    async def guess_all() -> list[int]:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as client:
            page = await client.get("/login")
            token = find_form(page.text, "/login").fields["csrf_token"]

            async def guess(i: int) -> int:
                data = {"email": srv.admin_email, "password": f"wrong-{i}", "csrf_token": token}
                return (await client.post("/login", data=data)).status_code

            return list(await asyncio.gather(*(guess(i) for i in range(40))))

    statuses = asyncio.run(guess_all())
    assert sorted(set(statuses)) == [401, 429], statuses
    assert statuses.count(401) == 3
    with srv.client() as owner:
        assert sign_in(owner, srv.admin_email, srv.admin_password).status_code == 429


def test_owner_with_a_known_device_signs_in_while_guessing_locks_the_account(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(OSTIARY_LOGIN_ACCOUNT_FAILURES="3")
    with srv.client() as owner:
        assert sign_in(owner, srv.admin_email, srv.admin_password).status_code == 303
        assert DEVICE_COOKIE in owner.cookies
        owner.cookies.delete(SESSION_COOKIE)  # signed out; the device cookie stays
        with srv.client() as attacker:
            statuses = [
                sign_in(attacker, srv.admin_email, f"wrong-{i}").status_code for i in range(4)
            ]
            assert statuses == [401, 401, 401, 429]
            assert sign_in(attacker, srv.admin_email, srv.admin_password).status_code == 429
        response = sign_in(owner, srv.admin_email, srv.admin_password)
        assert response.status_code == 303, login_error(response.text)
        assert owner.get("/account").status_code == 200
