"""``prompt=login``, ``max_age=0`` and ``prompt=select_account`` against a real server.

OpenID Connect Core 1.0 section 3.1.2.1. Authlib (an independent OAuth client) builds the
requests and redeems the codes; an httpx client with its own cookie jar plays the browser
through the real HTML forms; ID tokens are verified with joserfc against JWKS fetched over
HTTP. A forged loop-stopper marker (``_ost_auth_after`` / ``_ost_account_chosen``) added to
the request must not skip the sign-in or the choice; the honest round trip asks once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD, find_form, login_error, submit
from tests.e2e.oauth_fixtures import (
    callback_params,
    create_clients,
    decode_verified,
    fetch_jwks,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: never followed


@dataclass
class Setup:
    server: Server
    client: dict[str, Any]
    users: dict[str, str]


@pytest.fixture(scope="module")
def setup(server: Server) -> Setup:
    clients = create_clients(server, web=["--redirect-uri", REDIRECT])
    users = server.create_users("login", "maxage", "select", "other", password=STRONG_PASSWORD)
    return Setup(server, clients["web"], users)


def _oauth(setup: Setup) -> OAuth2Client:
    return OAuth2Client(
        client_id=setup.client["client_id"],
        client_secret=setup.client["client_secret"],
        redirect_uri=REDIRECT,
        scope="openid email",
        code_challenge_method="S256",
        timeout=15.0,
    )


def _request(setup: Setup, **extra: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    with _oauth(setup) as oauth:
        url, _ = oauth.create_authorization_url(
            f"{setup.server.base_url}/authorize",
            code_verifier=verifier,
            nonce=secrets.token_urlsafe(8),
            **extra,
        )
    return url, verifier


def _sign_in_at(browser: httpx.Client, location: str, email: str) -> str:
    """Fill in the sign-in form /authorize sent us to; returns where it sends us back."""
    assert location.startswith("/login?"), location
    page = browser.get(location)
    assert page.status_code == 200, (page.status_code, page.headers.get("location"))
    signed = submit(browser, find_form(page.text, "/login"), email=email, password=STRONG_PASSWORD)
    assert signed.status_code == 303, (signed.status_code, login_error(signed.text))
    return signed.headers["location"]


def _consent_if_asked(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    if response.status_code == 200 and 'id="consent-form"' in response.text:
        response = submit(browser, find_form(response.text, "/authorize/consent"), decision="allow")
    return response


def _id_token(setup: Setup, response: httpx.Response, verifier: str) -> dict[str, Any]:
    params = callback_params(response, REDIRECT)
    with _oauth(setup) as oauth:
        token = oauth.fetch_token(
            f"{setup.server.base_url}/token", code=params["code"], code_verifier=verifier
        )
    _, claims = decode_verified(token["id_token"], fetch_jwks(setup.server.base_url))
    return claims


def _first_sign_in(setup: Setup, browser: httpx.Client, email: str) -> dict[str, Any]:
    url, verifier = _request(setup)
    response = browser.get(url)
    assert response.status_code == 303
    response = browser.get(_sign_in_at(browser, response.headers["location"], email))
    return _id_token(setup, _consent_if_asked(browser, response), verifier)


def _to_login(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith("/login?") and "reauth=1" in location, location
    return location


@pytest.mark.parametrize(
    ("user", "demand"), [("login", {"prompt": "login"}), ("maxage", {"max_age": "0"})]
)
def test_a_signed_in_user_must_sign_in_again_and_a_forged_marker_does_not_skip_it(
    setup: Setup, user: str, demand: dict[str, str]
) -> None:
    email = setup.users[user]
    with setup.server.client() as browser:
        first = _first_sign_in(setup, browser, email)
        url, verifier = _request(setup, **demand)
        for forged in ("0", "1", str(first["auth_time"])):
            # The client (or anyone editing the URL) adds the loop-stopper itself.
            response = browser.get(f"{url}&{urlencode({'_ost_auth_after': forged})}")
            _to_login(response)
        login = _to_login(browser.get(url))
        back = _sign_in_at(browser, login, email)
        assert parse_qs(urlsplit(back).query)["_ost_auth_after"] != ["0"]
        response = browser.get(back)  # asked once: the new sign-in meets the demand
        claims = _id_token(setup, response, verifier)
    assert claims["sub"] == first["sub"]
    assert claims["sid"] != first["sid"]  # a new sign-in, not the first session
    assert claims["auth_time"] >= first["auth_time"]


def test_select_account_offers_a_choice_that_a_forged_marker_does_not_skip(
    setup: Setup,
) -> None:
    email = setup.users["select"]
    with setup.server.client() as browser:
        first = _first_sign_in(setup, browser, email)
        url, verifier = _request(setup, prompt="select_account")
        forged = browser.get(f"{url}&_ost_account_chosen=1")
        assert forged.status_code == 200 and 'id="continue"' in forged.text
        page = browser.get(url)
        assert page.status_code == 200 and f'id="account-email">{email}<' in page.text
        cont = page.text.split('id="continue" href="')[1].split('"')[0].replace("&amp;", "&")
        with setup.server.client() as stranger:  # the choice link is worthless elsewhere
            _first_sign_in(setup, stranger, setup.users["other"])
            assert 'id="continue"' in stranger.get(cont).text
        claims = _id_token(setup, browser.get(cont), verifier)
    assert claims["sub"] == first["sub"] and claims["sid"] == first["sid"]
