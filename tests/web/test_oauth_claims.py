"""Scopes (RFC 6749 section 3.3: partial grants) and claims (OpenID Connect Core 1.0 sections
5.4 and 5.5) through the real endpoints in-process, driven by Authlib, tokens verified with
joserfc against the published JWKS."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ostiary.features.clients.service import ClientRegistration
from ostiary.protocol.oidc import ACR_ONE_FACTOR
from ostiary.storage.sqla.oauth_repositories import SqlClientStore
from tests.web.helpers import sign_in
from tests.web.test_oauth_flow import (
    EMAIL,
    ISSUER,
    REDIRECT,
    _authorize,
    _oauth,
    _refresh,
    setup,
)

__all__ = ["setup"]

PROFILE = {
    "given_name": "Grace",
    "family_name": "Hopper",
    "birthdate": "1906-12-09",
    "phone_number": "+14155550123",
    "address": {"locality": "Arlington", "country": "US"},
}


@pytest.fixture
async def profiled(app: Any, setup: dict[str, Any]) -> dict[str, Any]:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.update_profile(setup["user"].id, claims=PROFILE)
    return setup


async def _jwks(client: httpx.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())


async def _flow(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], scope: str, **extra: str
) -> tuple[Any, dict[str, Any], httpx.Response]:
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    verifier = secrets.token_urlsafe(48)
    url, _state = oauth.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=verifier, nonce="n1", scope=scope, **extra
    )
    if (await client.get("/account")).status_code != 200:
        await sign_in(client, EMAIL)
    consent_seen = await client.get(url)
    response = await _authorize(client, url)
    assert response.status_code == 303, response.text
    token = await oauth.fetch_token(
        f"{ISSUER}/token",
        authorization_response=response.headers["location"],
        code_verifier=verifier,
    )
    return oauth, token, consent_seen


async def _id_claims(client: httpx.AsyncClient, token: dict[str, Any]) -> dict[str, Any]:
    keys = await _jwks(client)
    return dict(jwt.decode(token["id_token"], keys, algorithms=["ES256", "RS256"]).claims)


async def _userinfo(client: httpx.AsyncClient, token: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- scopes: partial grants ------------------------------------------------------------------


async def test_scopes_the_client_may_not_have_are_dropped_and_the_grant_says_so(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, token, consent = await _flow(app, client, setup, "openid email admin:all")
    assert token["scope"] == "openid email"  # RFC 6749 section 3.3
    assert 'data-scope="admin:all"' not in consent.text  # the consent page shows the grant
    assert 'data-scope="email"' in consent.text
    claims = jwt.decode(token["access_token"], await _jwks(client), algorithms=["ES256"]).claims
    assert claims["scope"] == "openid email"


@pytest.mark.parametrize(
    ("scope", "fragment"), [("admin:all", "admin:all"), ("openid models:read", "openid")]
)
async def test_nothing_usable_or_openid_not_allowed_is_invalid_scope(
    app: Any, client: httpx.AsyncClient, scope: str, fragment: str
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        narrow, _ = await unit.clients.register(
            ClientRegistration(name="API", redirect_uris=(REDIRECT,), scopes=("models:read",))
        )
    query = {
        "response_type": "code",
        "client_id": narrow.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    response = await client.get("/authorize?" + urlencode(query))
    assert response.status_code == 303
    got = parse_qs(urlsplit(response.headers["location"]).query)
    assert got["error"] == ["invalid_scope"] and fragment in got["error_description"][0]


async def test_client_credentials_partial_grant(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    auth = (setup["machine"].client_id, setup["machine_secret"])
    ok = await client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "models:read billing:write"},
        auth=auth,
    )
    assert ok.status_code == 200 and ok.json()["scope"] == "models:read"
    refused = await client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "billing:write"}, auth=auth
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"


async def test_refresh_drops_a_scope_the_client_lost_and_never_widens(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], clock: Any
) -> None:
    _, token, _ = await _flow(app, client, setup, "openid email offline_access")
    auth = (setup["client"].client_id, setup["secret"])
    wider = await _refresh(client, auth, token["refresh_token"], scope="openid email profile")
    assert wider.json()["error"] == "invalid_scope"
    async with app.state.runtime.unit() as unit:  # an operator narrowed the client
        store = SqlClientStore(unit.conn)
        stored = await store.get(setup["client"].client_id)
        assert stored is not None
        stored.scopes = [s for s in stored.scopes if s != "email"]
        await store.update(stored)
    clock.advance(timedelta(seconds=6))  # past the client cache's 5 s
    narrowed = await _refresh(client, auth, token["refresh_token"])
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "openid offline_access"


# -- claims per scope (Core 5.4) ---------------------------------------------------------------


async def test_claims_are_released_per_scope_only_when_they_have_a_value(
    app: Any, client: httpx.AsyncClient, profiled: dict[str, Any]
) -> None:
    _, token, _ = await _flow(app, client, profiled, "openid phone")
    info = await _userinfo(client, token)
    assert info == {
        "sub": profiled["user"].id,
        "phone_number": "+14155550123",
        "phone_number_verified": False,
    }
    _, token, _ = await _flow(app, client, profiled, "openid profile email address")
    info = await _userinfo(client, token)
    assert info["address"] == PROFILE["address"]
    assert info["given_name"] == "Grace" and info["birthdate"] == "1906-12-09"
    assert info["name"] == "Grace Hopper" and info["email"] == EMAIL
    assert "phone_number" not in info and "nickname" not in info and "picture" not in info
    id_claims = await _id_claims(client, token)
    assert id_claims["family_name"] == "Hopper"  # today's rule: scope claims in the ID token


async def test_discovery_lists_claims_scopes_and_the_claims_parameter(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/.well-known/openid-configuration")).json()
    assert {"phone", "address", "profile", "email"} <= set(doc["scopes_supported"])
    assert {"given_name", "phone_number_verified", "address", "zoneinfo"} <= set(
        doc["claims_supported"]
    )
    assert doc["claims_parameter_supported"] is True


# -- the claims parameter (Core 5.5) -------------------------------------------------------------


async def test_claims_parameter_userinfo_and_id_token_members_survive_refresh(
    app: Any, client: httpx.AsyncClient, profiled: dict[str, Any]
) -> None:
    request = {
        "userinfo": {"phone_number": {"essential": True}, "x-unknown": None},
        "id_token": {
            "given_name": None,
            "acr": {"essential": True, "values": ["urn:example:mfa", ACR_ONE_FACTOR]},
        },
    }
    _, token, consent = await _flow(
        app, client, profiled, "openid offline_access", claims=json.dumps(request)
    )
    # Claims asked for one by one need the user's consent, and the page lists them.
    assert 'data-scope="claim:phone_number"' in consent.text
    assert 'data-scope="claim:given_name"' in consent.text
    info = await _userinfo(client, token)
    assert info["phone_number"] == "+14155550123"
    assert "given_name" not in info and "email" not in info  # not asked for at userinfo
    id_claims = await _id_claims(client, token)
    assert id_claims["given_name"] == "Grace" and "phone_number" not in id_claims
    assert id_claims["acr"] == ACR_ONE_FACTOR  # what was achieved (5.5.1.1)
    auth = (profiled["client"].client_id, profiled["secret"])
    refreshed = await _refresh(client, auth, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert (await _id_claims(client, refreshed.json()))["given_name"] == "Grace"
    again = await _userinfo(client, refreshed.json())
    assert again["phone_number"] == "+14155550123"


@pytest.mark.parametrize(
    "acr",
    [{"essential": True, "values": ["urn:example:mfa"]}, {"essential": True, "value": "x"}],
)
async def test_essential_acr_that_cannot_be_met_is_a_failed_authentication(
    client: httpx.AsyncClient, setup: dict[str, Any], acr: dict[str, Any]
) -> None:
    """Core 5.5.1.1: "If this is an Essential Claim and the requirement cannot be met, then
    the Authorization Server MUST treat that outcome as a failed authentication attempt"."""
    query = {
        "response_type": "code",
        "client_id": setup["client"].client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s",
        "nonce": "n",
        "claims": json.dumps({"id_token": {"acr": acr}}),
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    response = await client.get("/authorize?" + urlencode(query))
    assert response.status_code == 303
    got = parse_qs(urlsplit(response.headers["location"]).query)
    assert got["error"] == ["unmet_authentication_requirements"] and got["state"] == ["s"]


async def test_a_voluntary_acr_that_cannot_be_met_gets_what_was_achieved(
    app: Any, client: httpx.AsyncClient, profiled: dict[str, Any]
) -> None:
    request = {"id_token": {"acr": {"values": ["urn:example:mfa"]}}}
    _, token, _ = await _flow(app, client, profiled, "openid", claims=json.dumps(request))
    assert (await _id_claims(client, token))["acr"] == ACR_ONE_FACTOR


@pytest.mark.parametrize(
    "claims", ["{not json", "[]", '{"userinfo": {"email": 1}}', '{"id_token": []}']
)
async def test_malformed_claims_parameter_is_an_invalid_request_redirect(
    client: httpx.AsyncClient, setup: dict[str, Any], claims: str
) -> None:
    query = {
        "response_type": "code",
        "client_id": setup["client"].client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s",
        "claims": claims,
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    response = await client.get("/authorize?" + urlencode(query))
    assert response.status_code == 303
    got = parse_qs(urlsplit(response.headers["location"]).query)
    assert got["error"] == ["invalid_request"] and got["state"] == ["s"]
