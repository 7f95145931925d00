"""Who may call the management API (web/management.py): RFC 6750 bearer credentials.

- Section 3 / 3.1: no credential -> 401 with ``WWW-Authenticate: Bearer`` (no error code); an
  invalid, expired or revoked one -> 401 ``invalid_token``; a token without the scope ->
  403 ``insufficient_scope`` naming ``ostiary.manage``.
- A client_credentials token (RFC 9068 section 2.2: ``sub`` is the client) has no user: 403.
- API keys (features/apikeys): a key acts only in its organization (404 elsewhere) with its
  narrowed permissions, capped by its owner's; an unknown, revoked or removed member's key is
  401.
- End to end: an Authlib relying party that asks for ``ostiary.manage`` gets a token that
  manages; one that asked for sign-in scopes only gets 403.
"""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from tests.web.helpers import csrf_from, sign_in
from tests.web.management_helpers import PASSWORD, World, build_world, mint


@pytest.fixture
async def world(app: Any, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


def _a(world: World, rest: str = "") -> str:
    return f"/api/v1/orgs/{world.orgs['A']['id']}{rest}"


async def _as(
    world: World, token: str, method: str = "GET", path: str = "/api/v1/orgs"
) -> httpx.Response:
    return await world.client.request(method, path, headers={"Authorization": f"Bearer {token}"})


async def test_no_credential_is_401_with_a_bare_bearer_challenge(world: World) -> None:
    response = await world.client.get(_a(world, "/members"))
    assert response.status_code == 401
    # Before the body is validated: an anonymous caller learns nothing of the shapes.
    invalid_body = await world.client.post("/api/v1/orgs", json={"nope": 1})
    assert invalid_body.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ostiary"'
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "Token x"],
)
async def test_malformed_or_invalid_credentials_are_401(world: World, header: str) -> None:
    response = await world.client.get(_a(world), headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_without_the_manage_scope_is_403_insufficient_scope(
    world: World, app: Any
) -> None:
    token = await mint(app, world.users["alice"], "openid profile email")
    response = await _as(world, token, path=_a(world))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="ostiary.manage"' in challenge


async def test_a_client_credentials_token_is_told_to_use_an_api_key(world: World, app: Any) -> None:
    token = await mint(app, "ignored", user=False)
    response = await world.client.post(
        "/api/v1/orgs", json={"name": "M"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    body = response.json()["error"]
    assert body["code"] == "client_token" and "API key" in body["message"]


async def test_a_token_for_another_audience_is_401(world: World, app: Any) -> None:
    token = await mint(app, world.users["alice"], audience=["https://api.example"])
    assert (await _as(world, token)).status_code == 401


async def test_revoked_expired_and_disabled_are_401(
    world: World, app: Any, clock: FrozenClock
) -> None:
    assert (await _as(world, world.tokens["alice"])).status_code == 200
    async with app.state.runtime.unit() as unit:
        await unit.end_user_sessions(world.users["alice"], actor=None, reason="test")
    assert (await _as(world, world.tokens["alice"])).status_code == 401
    async with app.state.runtime.unit() as unit:
        await unit.accounts.disable("carol@example.com")
    assert (await _as(world, world.tokens["carol"])).status_code == 401
    clock.advance(timedelta(minutes=6))  # past the 5-minute lifetime
    assert (await _as(world, world.tokens["dave"])).status_code == 401


async def _key(world: World, who: str, permissions: list[str] | None = None) -> str:
    async with world.app.state.runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            world.orgs["A"]["id"],
            ("user", world.users[who]),
            name=f"{who} key",
            permissions=permissions,
            actor=None,
        )
    return issued.secret


async def test_an_api_key_acts_only_in_its_organization_within_its_permissions(
    world: World,
) -> None:
    a, b = world.orgs["A"]["id"], world.orgs["B"]["id"]
    reader = await _key(world, "alice", ["members:read"])
    # carol is a plain member: a key with all of her permissions is capped at hers.
    wide = await _key(world, "carol")
    assert (await _as(world, reader, path=_a(world, "/members"))).status_code == 200
    refused = await _as(world, reader, "POST", _a(world, "/groups"))
    assert refused.status_code in (403, 422)
    create = await world.client.post(
        _a(world, "/groups"), json={"name": "g"}, headers={"Authorization": f"Bearer {reader}"}
    )
    assert create.status_code == 403 and "groups:manage" in create.json()["error"]["message"]
    assert (await _as(world, reader, path=f"/api/v1/orgs/{b}")).status_code == 404
    listed = (await _as(world, reader)).json()
    assert [o["id"] for o in listed["items"]] == [a]
    made = await world.client.post(
        "/api/v1/orgs", json={"name": "K"}, headers={"Authorization": f"Bearer {reader}"}
    )
    assert made.status_code == 403
    leave = await _as(world, reader, "POST", _a(world, "/leave"))
    assert leave.status_code == 403
    capped = await world.client.post(
        _a(world, "/roles"), json={"name": "r"}, headers={"Authorization": f"Bearer {wide}"}
    )
    assert capped.status_code == 403
    unknown = await _as(world, "ost_sk_" + "0" * 24 + "_" + secrets.token_urlsafe(32))
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
    # Removing a member revokes their keys in the organization: the key is no longer valid.
    carol = world.users["carol"]
    assert (await _as(world, wide, path=_a(world))).status_code == 200
    assert (await world.call("alice", "DELETE", _a(world, f"/members/{carol}"))).status_code == 204
    assert (await _as(world, wide, path=_a(world))).status_code == 401


async def test_discovery_lists_the_manage_scope(client: httpx.AsyncClient) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert "ostiary.manage" in document["scopes_supported"]


async def _authlib_token(app: Any, browser: httpx.AsyncClient, scope: str) -> str:
    redirect = "https://console.example/cb"
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        client, secret = await unit.clients.register(
            ClientRegistration(
                name="Console",
                redirect_uris=(redirect,),
                scopes=("openid", "profile", "email", "ostiary.manage"),
            )
        )
    oauth = AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=secret,
        redirect_uri=redirect,
        scope=scope,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url("http://testserver/authorize", code_verifier=verifier)
    response = await browser.get(url)
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        next_path = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
        await sign_in(browser, "alice@example.com", PASSWORD, next_path=next_path)
        response = await browser.get(url)
    if response.status_code == 200 and "consent-form" in response.text:
        request = response.text.split('name="request" value="')[1].split('"')[0]
        response = await browser.post(
            "/authorize/consent",
            data={
                "csrf_token": csrf_from(response.text),
                "request": html.unescape(request),
                "decision": "allow",
            },
        )
    location = response.headers["location"]
    token = await oauth.fetch_token(
        "http://testserver/token", authorization_response=location, code_verifier=verifier
    )
    return str(token["access_token"])


async def test_an_authlib_relying_party_gets_a_managing_token_only_when_it_asks(
    world: World, app: Any, client: httpx.AsyncClient
) -> None:
    managing = await _authlib_token(app, client, "openid ostiary.manage")
    listed = await _as(world, managing)
    assert listed.status_code == 200, listed.text
    assert [o["id"] for o in listed.json()["items"]] == [world.orgs["A"]["id"]]
    sign_in_only = await _authlib_token(app, client, "openid profile")
    assert (await _as(world, sign_in_only)).status_code == 403
