"""PKCE modes, either secret method and ``clients update`` against a real ``ostiary dev`` server.

Authlib (an independent OAuth client) talks to the server over a socket; clients are registered
and changed with the real CLI; ID tokens are verified with joserfc against the JWKS fetched over
HTTP. RFC 9700 section 2.1.1 (a confidential OpenID client's nonce instead of PKCE), RFC 6749
section 2.3.1 (client_secret_basic and client_secret_post for a client holding a secret).
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import (
    authorize_over_http,
    callback_params,
    create_clients,
    decode_verified,
    fetch_jwks,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: never followed
CLIENT_CACHE_S = 5.0  # the server caches client records up to this long
DEADLINE_S = 20.0


def test_authlib_with_client_secret_post_and_a_nonce_instead_of_pkce(server: Server) -> None:
    # A confidential client registered with the defaults (client_secret_basic, pkce nonce), used
    # as mozilla-django-oidc or python-social-auth do: a nonce, no PKCE, the secret in the form.
    web = create_clients(server, web=["--redirect-uri", REDIRECT])["web"]
    assert web["pkce"] == "nonce" and web["token_endpoint_auth_method"] == "client_secret_basic"
    base = server.base_url
    with OAuth2Client(
        client_id=web["client_id"],
        client_secret=web["client_secret"],
        redirect_uri=REDIRECT,
        scope="openid email",
        token_endpoint_auth_method="client_secret_post",
        timeout=15.0,
    ) as oauth:
        nonce = secrets.token_urlsafe(12)
        url, state = oauth.create_authorization_url(f"{base}/authorize", nonce=nonce)
        assert "code_challenge" not in url
        with server.client() as browser:
            response = authorize_over_http(browser, url, server.admin_email, server.admin_password)
        params = callback_params(response, REDIRECT)
        assert params["state"] == state and params["code"]
        token = oauth.fetch_token(f"{base}/token", code=params["code"])
    _, claims = decode_verified(token["id_token"], fetch_jwks(base))
    assert claims["nonce"] == nonce and claims["aud"] == web["client_id"]


def test_a_post_registered_client_may_use_client_secret_basic(server: Server) -> None:
    machine = create_clients(
        server,
        machine=[
            *("--grant-type", "client_credentials", "--scope", "models:read"),
            *("--auth-method", "client_secret_post"),
        ],
    )["machine"]
    base = server.base_url
    with OAuth2Client(
        client_id=machine["client_id"],
        client_secret=machine["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        timeout=15.0,
    ) as oauth:
        token = oauth.fetch_token(f"{base}/token", grant_type="client_credentials")
    auth = (machine["client_id"], machine["client_secret"])
    about = httpx.post(
        f"{base}/introspect", data={"token": token["access_token"]}, auth=auth, timeout=15.0
    )
    assert about.status_code == 200 and about.json()["active"] is True
    form = {"client_id": auth[0], "client_secret": auth[1]}
    both = httpx.post(
        f"{base}/revoke", data={"token": token["access_token"], **form}, auth=auth, timeout=15.0
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"  # RFC 6749 2.3


def test_clients_update_pkce_required_is_enforced_at_authorize(server: Server) -> None:
    web = create_clients(server, web=["--redirect-uri", REDIRECT])["web"]
    query = {
        "response_type": "code",
        "client_id": web["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "nonce": "n-1",
        "state": "s-1",
    }
    url = f"{server.base_url}/authorize?{urlencode(query)}"
    with server.client() as browser:
        first = authorize_over_http(browser, url, server.admin_email, server.admin_password)
        assert callback_params(first, REDIRECT)["code"]  # nonce mode: no PKCE needed

        done = server.cli("clients", "update", web["client_id"], "--pkce", "required", "--json")
        assert done.returncode == 0, done.stderr
        updated_at = time.monotonic()
        updated: dict[str, Any] = orjson.loads(done.stdout)
        assert updated["pkce"] == "required" and updated["client_id"] == web["client_id"]

        params: dict[str, str] = {}
        while time.monotonic() - updated_at < DEADLINE_S:
            params = callback_params(browser.get(url), REDIRECT)
            if "error" in params:
                break
            time.sleep(0.25)
        refused_after = time.monotonic() - updated_at
    assert params.get("error") == "invalid_request", params
    assert "code_challenge" in params["error_description"] and "code" not in params
    assert refused_after <= CLIENT_CACHE_S + 2.0, f"still served {refused_after:.1f} s later"
