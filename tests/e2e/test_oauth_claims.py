"""Standard claims (OpenID Connect Core 1.0 sections 5.1, 5.4, 5.5) against a real ``ostiary
dev`` server: the operator sets them with ``ostiary users update --json``, Authlib (an
independent client) runs the code flow over HTTP with a partial scope grant and the ``claims``
parameter, and reads them from userinfo and from the ID token verified with joserfc against
the JWKS fetched over HTTP."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import orjson
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import (
    authorize_over_http,
    callback_params,
    create_clients,
    decode_verified,
    fetch_jwks,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: never followed


@pytest.fixture(scope="module")
def setup(server: Server) -> tuple[dict[str, Any], str, dict[str, Any]]:
    (client,) = create_clients(server, rp=["--redirect-uri", REDIRECT]).values()
    email = server.create_users("claims", password=STRONG_PASSWORD)["claims"]
    updated = server.cli(
        *("users", "update", email, "--name", "Grace Hopper", "--given-name", "Grace"),
        *("--family-name", "Hopper", "--phone-number", "+1 415 555 0123"),
        *("--phone-number-verified", "--address-locality", "Arlington", "--address-country"),
        *("US", "--zoneinfo", "America/New_York", "--email-verified", "--json"),
    )
    assert updated.returncode == 0, updated.stderr
    return client, email, orjson.loads(updated.stdout)


def _flow(server: Server, client: dict[str, Any], email: str, **extra: str) -> dict[str, Any]:
    with OAuth2Client(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        timeout=15.0,
    ) as oauth:
        verifier = secrets.token_urlsafe(48)
        url, _ = oauth.create_authorization_url(
            f"{server.base_url}/authorize", code_verifier=verifier, nonce="n", **extra
        )
        with server.client() as browser:
            response = authorize_over_http(browser, url, email, STRONG_PASSWORD)
        params = callback_params(response, REDIRECT)
        return dict(
            oauth.fetch_token(
                f"{server.base_url}/token", code=params["code"], code_verifier=verifier
            )
        )


def _userinfo(server: Server, token: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_cli_update_json_reports_the_claims(setup: tuple[Any, str, dict[str, Any]]) -> None:
    _, _, updated = setup
    assert updated["email_verified"] is True and updated["name"] == "Grace Hopper"
    assert updated["claims"]["phone_number"] == "+14155550123"
    assert updated["claims"]["address"] == {"locality": "Arlington", "country": "US"}


def test_claims_per_scope_with_a_partial_grant(
    server: Server, setup: tuple[dict[str, Any], str, Any]
) -> None:
    client, email, _ = setup
    token = _flow(server, client, email, scope="openid profile phone address billing:admin")
    assert token["scope"] == "openid profile phone address"  # RFC 6749 section 3.3
    info = _userinfo(server, token)
    assert info["given_name"] == "Grace" and info["family_name"] == "Hopper"
    assert info["zoneinfo"] == "America/New_York"
    assert info["phone_number"] == "+14155550123" and info["phone_number_verified"] is True
    assert info["address"] == {"locality": "Arlington", "country": "US"}
    assert "email" not in info  # the email scope was not requested
    _, id_claims = decode_verified(token["id_token"], fetch_jwks(server.base_url))
    assert id_claims["given_name"] == "Grace"


def test_claims_parameter_over_http(server: Server, setup: tuple[dict[str, Any], str, Any]) -> None:
    client, email, _ = setup
    request = {"userinfo": {"email": {"essential": True}}, "id_token": {"phone_number": None}}
    token = _flow(server, client, email, scope="openid", claims=json.dumps(request))
    info = _userinfo(server, token)
    assert info["email"] == email and "phone_number" not in info
    _, id_claims = decode_verified(token["id_token"], fetch_jwks(server.base_url))
    assert id_claims["phone_number"] == "+14155550123" and "email" not in id_claims
