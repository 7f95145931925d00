"""The request shapes of the OpenID Foundation conformance suite's Basic OP plan, replayed over
HTTP against a real ``ostiary dev``, each response checked as the suite checks it.

The suite's Basic OP client is confidential (``client_secret_basic``), sends ``state`` and
``nonce`` and no PKCE, and varies one thing per test module: ``prompt=login``, ``prompt=none``
(signed in, and not), ``max_age``, ``id_token_hint``, the ``claims`` request parameter,
``scope=openid profile email address phone`` and ``response_mode=form_post``. Every ID token is
verified with joserfc against the JWKS fetched over HTTP (OpenID Connect Core 3.1.3.7: iss,
aud, nonce, exp, iat, auth_time when asked for, at_hash when present), and userinfo's ``sub``
must equal the ID token's (Core 5.3.2). The browser part is scripted over HTTP with the real
sign-in and consent forms (tests/e2e/httpflow.py); no code of Ostiary's runs on this side.

``max_age`` is replayed as ``max_age=0`` (Core 3.1.2.1: as ``prompt=login``), because the
harness has no clock to move and the tests never sleep.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD, find_form, login_error, submit
from tests.e2e.oauth_fixtures import (
    authorize_over_http,
    callback_params,
    decode_verified,
    fetch_jwks,
)
from tests.e2e.rp_apps import register_rp

pytestmark = [pytest.mark.e2e]

REDIRECT = "http://127.0.0.1:9/cert/callback"  # never followed: nothing listens
BASIC_SCOPES = ["openid", "profile", "email", "address", "phone"]


@dataclass
class Rp:
    server: Server
    client: dict[str, Any]
    email: str


@pytest.fixture(scope="module")
def rp(server: Server) -> Rp:
    scopes = [arg for scope in BASIC_SCOPES for arg in ("--scope", scope)]
    client = register_rp(server, "Conformance Basic OP", "--redirect-uri", REDIRECT, *scopes)
    email = server.create_users("cert", password=STRONG_PASSWORD)["cert"]
    return Rp(server, client, email)


def _request(rp: Rp, **extra: str) -> tuple[str, dict[str, str]]:
    """An authorization request of the suite: code, state, nonce, no PKCE."""
    params = {
        "response_type": "code",
        "client_id": rp.client["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        **extra,
    }
    return f"/authorize?{urlencode(params)}", params


def _left_half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()  # every alg Ostiary uses here is *256
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _redeem(rp: Rp, params: dict[str, str], code: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Token request with client_secret_basic; (token response, verified ID token claims)."""
    response = httpx.post(
        f"{rp.server.base_url}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(rp.client["client_id"], rp.client["client_secret"]),
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    assert tokens["token_type"].lower() == "bearer"
    header, claims = decode_verified(tokens["id_token"], fetch_jwks(rp.server.base_url))
    now = time.time()
    assert claims["iss"] == rp.server.base_url
    assert claims["aud"] == rp.client["client_id"] or rp.client["client_id"] in claims["aud"]
    assert claims["nonce"] == params["nonce"]
    assert claims["iat"] <= now + 60 < claims["exp"] + 60
    if "at_hash" in claims:
        assert header["alg"].endswith("256"), header
        assert claims["at_hash"] == _left_half_hash(tokens["access_token"])
    return tokens, claims


def _userinfo(rp: Rp, tokens: dict[str, Any], id_claims: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(
        f"{rp.server.base_url}/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    claims: dict[str, Any] = response.json()
    assert claims["sub"] == id_claims["sub"]
    return claims


def _signed_in_flow(rp: Rp, browser: httpx.Client, **extra: str) -> tuple[dict[str, Any], ...]:
    url, params = _request(rp, **extra)
    response = authorize_over_http(browser, url, rp.email, STRONG_PASSWORD)
    found = callback_params(response, REDIRECT)
    assert found["state"] == params["state"] and found["iss"] == rp.server.base_url
    tokens, claims = _redeem(rp, params, found["code"])
    return tokens, claims, _userinfo(rp, tokens, claims)


def _goes_to_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login?")


def test_code_flow_with_state_and_nonce_and_no_pkce(rp: Rp) -> None:
    """OP-Response-code, OP-nonce-code, OP-ClientAuth-Basic-Static, OP-UserInfo-Endpoint."""
    with rp.server.client() as browser:
        _tokens, claims, userinfo = _signed_in_flow(rp, browser)
    assert claims["sub"] == userinfo["sub"]


def test_scope_profile_email_address_phone(rp: Rp) -> None:
    """OP-scope-All: every scope of the request is granted and its claims are released."""
    with rp.server.client() as browser:
        tokens, _claims, userinfo = _signed_in_flow(rp, browser, scope=" ".join(BASIC_SCOPES))
    assert set(tokens["scope"].split()) == set(BASIC_SCOPES)
    assert userinfo["email"] == rp.email


def test_claims_request_parameter(rp: Rp) -> None:
    """OP-claims-essential / OP-claims-auth_time-essential (Core 5.5)."""
    claims_request = {"userinfo": {"email": None}, "id_token": {"auth_time": {"essential": True}}}
    with rp.server.client() as browser:
        _tokens, claims, userinfo = _signed_in_flow(rp, browser, claims=json.dumps(claims_request))
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= time.time() + 60
    assert userinfo["email"] == rp.email  # asked for in userinfo, though scope is only openid


def test_prompt_login_and_max_age_zero_ask_again(rp: Rp) -> None:
    """OP-prompt-login and OP-Req-max_age=1 (as max_age=0): a signed-in user is sent to the
    sign-in form again, and the new ID token's auth_time is that sign-in's (Core 3.1.2.1)."""
    with rp.server.client() as browser:
        _, first, _ = _signed_in_flow(rp, browser)
        for extra in ({"prompt": "login"}, {"max_age": "0"}):
            url, params = _request(rp, **extra)
            asked = browser.get(url)
            assert _goes_to_login(asked), (extra, asked.headers.get("location"))
            page = browser.get(asked.headers["location"])
            assert page.status_code == 200, (extra, page.headers.get("location"))
            form = find_form(page.text, "/login")
            signed = submit(browser, form, email=rp.email, password=STRONG_PASSWORD)
            assert signed.status_code == 303, (extra, login_error(signed.text))
            found = callback_params(browser.get(signed.headers["location"]), REDIRECT)
            _, again = _redeem(rp, params, found["code"])
            assert again["sub"] == first["sub"] and again["auth_time"] >= first["auth_time"]


def test_prompt_none_signed_in_and_not(rp: Rp) -> None:
    """OP-prompt-none-LoggedIn and OP-prompt-none-NotLoggedIn (Core 3.1.2.6)."""
    with rp.server.client() as browser:
        url, params = _request(rp, prompt="none")
        refused = callback_params(browser.get(url), REDIRECT)
        assert refused["error"] == "login_required" and refused["state"] == params["state"]

        _, first, _ = _signed_in_flow(rp, browser)
        url, params = _request(rp, prompt="none")
        found = callback_params(browser.get(url), REDIRECT)
        _, claims = _redeem(rp, params, found["code"])
        assert claims["sub"] == first["sub"]


def test_id_token_hint(rp: Rp) -> None:
    """OP-Req-id_token_hint: a request with the user's own ID token as hint (prompt=none)."""
    with rp.server.client() as browser:
        _, _, _ = _signed_in_flow(rp, browser)
        tokens, claims, _ = _signed_in_flow(rp, browser)
        url, params = _request(rp, prompt="none", id_token_hint=tokens["id_token"])
        found = callback_params(browser.get(url), REDIRECT)
        _, hinted = _redeem(rp, params, found["code"])
        assert hinted["sub"] == claims["sub"]


def test_form_post_response_mode(rp: Rp) -> None:
    """OP-Response-form_post (OAuth 2.0 Form Post Response Mode section 2): an auto-submitting
    form posting code, state and iss to the redirect URI, which the page's CSP allows."""
    with rp.server.client() as browser:
        _signed_in_flow(rp, browser)  # signed in and consented: the next answer is the form
        url, params = _request(rp, response_mode="form_post")
        response = browser.get(url)
    assert response.status_code == 200, (response.status_code, response.headers)
    assert response.headers["content-type"].startswith("text/html")
    assert "no-store" in response.headers.get("cache-control", "")
    form = find_form(response.text, REDIRECT)
    assert form.method == "post"
    assert form.fields["state"] == params["state"] and form.fields["iss"] == rp.server.base_url
    csp = response.headers["content-security-policy"]
    assert "form-action" not in csp or "http://127.0.0.1:9" in csp, csp
    _, claims = _redeem(rp, params, form.fields["code"])
    assert claims["nonce"] == params["nonce"]
