"""Session-bound and offline refresh grants, and the operator commands that end sessions,
against a real ``ostiary dev`` server.

Authlib's httpx client (an independent OAuth implementation) fetches and refreshes tokens over
a real socket; the browser part follows the real HTML forms over HTTP; users and clients are
managed with the CLI, in another process.

- OpenID Connect Core 1.0 section 11: without ``offline_access`` a refresh token lives and dies
  with the browser session; with it (consented), it survives sign-out (OpenID Back-Channel
  Logout 1.0 section 2.7).
- ASVS 5.0 V7.4.3 / V7.4.5: ``users set-password`` (ends sessions by default),
  ``users end-sessions``, ``users enable``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD, find_form, login_error, submit
from tests.e2e.oauth_fixtures import (
    authorize_over_http,
    callback_params,
    create_clients,
    decode_verified,
    fetch_jwks,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: never followed
SESSION_BOUND = "openid profile email"
OFFLINE = "openid profile email offline_access"
NEW_PASSWORD = "another correct horse battery 71"


@pytest.fixture(scope="module")
def web(server: Server) -> dict[str, Any]:
    """A confidential client with the authorization code and refresh token grants."""
    return create_clients(server, web=["--redirect-uri", REDIRECT])["web"]


@pytest.fixture
def email(server: Server) -> str:
    """A user of the test's own (these tests end sessions and grants)."""
    return server.create_users("grants", password=STRONG_PASSWORD)["grants"]


@pytest.fixture
def browser(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _oauth(server: Server, web: dict[str, Any], scope: str = SESSION_BOUND) -> OAuth2Client:
    return OAuth2Client(
        client_id=web["client_id"],
        client_secret=web["client_secret"],
        redirect_uri=REDIRECT,
        scope=scope,
        code_challenge_method="S256",
        timeout=15.0,
    )


def _tokens(
    server: Server,
    web: dict[str, Any],
    browser: httpx.Client,
    email: str,
    scope: str,
    *,
    password: str = STRONG_PASSWORD,
    expect_consent: bool | None = None,
) -> dict[str, Any]:
    """The code flow in ``browser`` (signing in if needed, consent allowed): the tokens."""
    with _oauth(server, web, scope) as oauth:
        verifier = secrets.token_urlsafe(48)
        url, state = oauth.create_authorization_url(
            f"{server.base_url}/authorize", code_verifier=verifier
        )
        response = authorize_over_http(browser, url, email, password, expect_consent=expect_consent)
        params = callback_params(response, REDIRECT)
        assert params["state"] == state
        token = oauth.fetch_token(
            f"{server.base_url}/token", code=params["code"], code_verifier=verifier
        )
    return dict(token)


def _refresh(server: Server, web: dict[str, Any], refresh_token: str) -> dict[str, Any]:
    """Authlib's refresh; raises ``OAuthError`` when refused."""
    with _oauth(server, web) as oauth:
        return dict(oauth.refresh_token(f"{server.base_url}/token", refresh_token=refresh_token))


def _refused(server: Server, web: dict[str, Any], refresh_token: str) -> bool:
    """True when the refresh is refused with ``invalid_grant`` (any other error fails)."""
    with pytest.raises(OAuthError) as refused:
        _refresh(server, web, refresh_token)
    return refused.value.error == "invalid_grant"


def _active(server: Server, web: dict[str, Any], token: str) -> bool:
    response = httpx.post(
        f"{server.base_url}/introspect",
        data={"token": token},
        auth=(web["client_id"], web["client_secret"]),
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] or body == {"active": False}, body
    return bool(body["active"])


def _sign_out(browser: httpx.Client) -> None:
    page = browser.get("/account")
    assert page.status_code == 200, page.status_code
    assert submit(browser, find_form(page.text, "/logout")).status_code == 303
    assert browser.get("/account").status_code == 303


def _cli_json(server: Server, *args: str, stdin: str | None = None) -> Any:
    result: subprocess.CompletedProcess[str] = server.cli(*args, "--json", stdin=stdin)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


# -- session-bound and offline grants across sign-out ----------------------------------------


def test_sign_out_ends_session_bound_refresh_tokens_offline_ones_survive(
    server: Server, web: dict[str, Any], browser: httpx.Client, email: str
) -> None:
    bound = _tokens(server, web, browser, email, SESSION_BOUND, expect_consent=True)
    offline = _tokens(server, web, browser, email, OFFLINE, expect_consent=True)
    assert "offline_access" not in bound["scope"].split()
    assert "offline_access" in offline["scope"].split()
    keys = fetch_jwks(server.base_url)
    _, bound_claims = decode_verified(bound["access_token"], keys)
    assert bound_claims["sid"]
    bound = _refresh(server, web, bound["refresh_token"])  # works while signed in

    _sign_out(browser)

    assert _refused(server, web, bound["refresh_token"])
    assert not _active(server, web, bound["refresh_token"])
    assert not _active(server, web, bound["access_token"])
    assert _active(server, web, offline["refresh_token"])
    renewed = _refresh(server, web, offline["refresh_token"])
    _, claims = decode_verified(renewed["access_token"], keys)
    assert "sid" not in claims  # no longer tied to the ended browser session
    assert claims["sub"] == bound_claims["sub"]
    assert _active(server, web, renewed["access_token"])
    assert _refresh(server, web, renewed["refresh_token"])["access_token"]


def test_signing_in_again_ends_the_previous_sessions_tokens(
    server: Server, web: dict[str, Any], browser: httpx.Client, email: str
) -> None:
    bound = _tokens(server, web, browser, email, SESSION_BOUND)
    old_cookie = dict(browser.cookies)
    # The sign-in form posted again from this signed-in browser (the account page's token).
    page = browser.get("/account")
    csrf = find_form(page.text, "/logout").fields["csrf_token"]
    signed = browser.post(
        "/login", data={"email": email, "password": STRONG_PASSWORD, "csrf_token": csrf}
    )
    assert signed.status_code == 303, login_error(signed.text)
    assert dict(browser.cookies) != old_cookie
    assert not _active(server, web, bound["access_token"])
    assert _refused(server, web, bound["refresh_token"])
    with server.client(cookies=old_cookie) as stale:
        assert stale.get("/account").status_code == 303


# -- the operator's commands -----------------------------------------------------------------


def test_set_password_ends_sessions_and_every_refresh_token_unless_told_not_to(
    server: Server, web: dict[str, Any], browser: httpx.Client, email: str
) -> None:
    offline = _tokens(server, web, browser, email, OFFLINE)
    kept = _cli_json(
        server,
        *("users", "set-password", email, "--password-stdin", "--no-end-sessions"),
        stdin=NEW_PASSWORD + "\n",
    )
    assert kept["email"] == email and "sessions_ended" not in kept
    assert browser.get("/account").status_code == 200
    offline = _refresh(server, web, offline["refresh_token"])

    ended = _cli_json(
        server, *("users", "set-password", email, "--password-stdin"), stdin=STRONG_PASSWORD + "\n"
    )
    assert ended["sessions_ended"] == 1
    assert ended["refresh_families_revoked"] == 1
    assert browser.get("/account").status_code == 303
    assert not _active(server, web, offline["access_token"])
    assert _refused(server, web, offline["refresh_token"])


def test_end_sessions_disable_and_enable(
    server: Server, web: dict[str, Any], browser: httpx.Client, email: str
) -> None:
    bound = _tokens(server, web, browser, email, SESSION_BOUND)
    offline = _tokens(server, web, browser, email, OFFLINE)
    ended = _cli_json(server, "users", "end-sessions", email)
    assert (ended["email"], ended["sessions_ended"], ended["refresh_families_revoked"]) == (
        email,
        1,
        2,
    )
    assert browser.get("/account").status_code == 303
    for grant in (bound, offline):
        assert not _active(server, web, grant["access_token"])
        assert _refused(server, web, grant["refresh_token"])

    again = _tokens(server, web, browser, email, OFFLINE)
    assert _cli_json(server, "users", "disable", email)["disabled"] is True
    enabled = _cli_json(server, "users", "enable", email)
    assert enabled["email"] == email and enabled["disabled"] is False
    assert not _active(server, web, again["access_token"])
    assert _refused(server, web, again["refresh_token"])

    with server.client() as fresh_browser:
        after = _tokens(server, web, fresh_browser, email, OFFLINE)
        assert fresh_browser.get("/account").status_code == 200
    assert _active(server, web, after["access_token"])
    assert _active(server, web, _refresh(server, web, after["refresh_token"])["access_token"])
