"""Org-scoped clients (issue 12, section 1) through real flows, in-process over ASGI on every
backend: an Authlib relying party, tokens verified with joserfc against the published JWKS.
``org_id`` is the user's active organization; the ``roles`` scope adds ``org_roles`` and
``permissions``; refresh keeps the organization of the grant and fails once the user left it;
an organization's required acr steps a password session up, or sends a user without a factor
to set one up."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.protocol.oidc import ACR_MFA
from ostiary.protocol.permissions import PERMISSIONS
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "ada@example.com"
REDIRECT = "https://app.example/callback"


async def _client(app: Any, *, org_scoped: bool = True, scope: str = "openid roles") -> Any:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        registered, secret = await unit.clients.register(
            ClientRegistration(
                name="Console",
                redirect_uris=(REDIRECT,),
                scopes=("openid", "roles", "offline_access"),
                first_party=True,
                org_scoped=org_scoped,
            )
        )
    return AsyncOAuth2Client(
        client_id=registered.client_id,
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope=scope,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    )


async def _ada(app: Any, *orgs: tuple[str, str]) -> tuple[str, dict[str, str]]:
    """Ada, member of organizations named ``orgs`` with one role each; (user id, org ids)."""
    ids: dict[str, str] = {}
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(EMAIL, PASSWORD)
        for name, role in orgs:
            org = await unit.orgs.create(name, actor=None)
            await unit.orgs.add_member(org.id, user.id, actor=None)
            await unit.rbac.assign(org.id, ("user", user.id), role, actor=None)
            ids[name] = org.id
    return user.id, ids


def _start(oauth: AsyncOAuth2Client) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(
        "http://testserver/authorize", code_verifier=verifier, nonce="n-1"
    )
    return url, verifier


async def _tokens(
    client: httpx.AsyncClient, oauth: AsyncOAuth2Client, callback: str, verifier: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    assert callback.startswith(REDIRECT) and "code=" in callback, callback
    token = await oauth.fetch_token(
        "http://testserver/token", authorization_response=callback, code_verifier=verifier
    )
    return (*_verified(await _keys(client), token), token)


async def _keys(client: httpx.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())


def _verified(keys: KeySet, token: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    algs = ["RS256", "ES256"]
    return (
        jwt.decode(token["id_token"], keys, algorithms=algs).claims,
        jwt.decode(token["access_token"], keys, algorithms=algs).claims,
    )


async def _signed_in_flow(
    client: httpx.AsyncClient, oauth: AsyncOAuth2Client
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    url, verifier = _start(oauth)
    done = await client.get(url)
    assert done.status_code == 303, done.text[:500]
    return await _tokens(client, oauth, done.headers["location"], verifier)


async def test_tokens_carry_the_only_organization_with_roles_and_permissions(
    app: Any, client: httpx.AsyncClient
) -> None:
    user, orgs = await _ada(app, ("Acme", "member"))
    async with app.state.runtime.unit() as unit:  # a role through a group counts too
        group = await unit.rbac.create_group(orgs["Acme"], "readers", actor=None)
        await unit.rbac.add_group_member(orgs["Acme"], group.id, user, actor=None)
        await unit.rbac.assign(orgs["Acme"], ("group", group.id), "reader", actor=None)
    oauth = await _client(app)
    await sign_in(client, EMAIL)
    id_claims, access, _ = await _signed_in_flow(client, oauth)
    for claims in (id_claims, access):
        assert claims["sub"] == user and claims["org_id"] == orgs["Acme"]
        assert claims["org_roles"] == ["member", "reader"]
        assert "models:invoke" in claims["permissions"]
        assert "members:manage" not in claims["permissions"]
    # Without the roles scope: the organization only.
    plain = await _client(app, scope="openid")
    id_claims, access, _ = await _signed_in_flow(client, plain)
    assert id_claims["org_id"] == access["org_id"] == orgs["Acme"]
    assert "org_roles" not in access and "permissions" not in id_claims


async def test_an_owner_gets_every_permission_spelled_out(
    app: Any, client: httpx.AsyncClient
) -> None:
    _, orgs = await _ada(app, ("Acme", "owner"))
    await sign_in(client, EMAIL)
    _, access, _ = await _signed_in_flow(client, await _client(app))
    assert access["org_id"] == orgs["Acme"]
    assert access["org_roles"] == ["owner"] and access["permissions"] == sorted(PERMISSIONS)


async def test_other_clients_carry_no_organization(app: Any, client: httpx.AsyncClient) -> None:
    await _ada(app, ("Acme", "owner"))
    await sign_in(client, EMAIL)
    id_claims, access, _ = await _signed_in_flow(client, await _client(app, org_scoped=False))
    assert not {"org_id", "org_roles", "permissions"} & (id_claims.keys() | access.keys())


async def test_two_organizations_need_a_choice_none_is_refused(
    app: Any, client: httpx.AsyncClient
) -> None:
    _, orgs = await _ada(app, ("Acme", "member"), ("Beta", "admin"))
    oauth = await _client(app)
    await sign_in(client, EMAIL)
    url, verifier = _start(oauth)
    page = await client.get(url)
    assert page.status_code == 403 and 'id="no-active-org"' in page.text
    assert 'href="/account/organizations"' in page.text
    silent = await client.get(url + "&prompt=none")
    assert silent.status_code == 303
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["interaction_required"]
    mine = await client.get("/account/organizations")
    chosen = await client.post(
        "/account/organizations/active",
        data={"csrf_token": csrf_from(mine.text), "organization_id": orgs["Beta"]},
    )
    assert chosen.status_code == 303
    done = await client.get(url)
    id_claims, access, _ = await _tokens(client, oauth, done.headers["location"], verifier)
    assert access["org_id"] == id_claims["org_id"] == orgs["Beta"]
    assert access["org_roles"] == ["admin"]


async def test_refresh_keeps_the_grant_organization_and_fails_once_the_user_left(
    app: Any, client: httpx.AsyncClient
) -> None:
    user, orgs = await _ada(app, ("Acme", "member"), ("Beta", "member"))
    async with app.state.runtime.unit() as unit:
        await unit.orgs.set_active_org(user, orgs["Acme"])
    oauth = await _client(app)
    await sign_in(client, EMAIL)
    _, access, token = await _signed_in_flow(client, oauth)
    assert access["org_id"] == orgs["Acme"] and "refresh_token" in token
    async with app.state.runtime.unit() as unit:
        await unit.orgs.set_active_org(user, orgs["Beta"])
    refreshed = await oauth.refresh_token(
        "http://testserver/token", refresh_token=token["refresh_token"]
    )
    _, access = _verified(await _keys(client), refreshed)
    assert access["org_id"] == orgs["Acme"]  # the grant's organization, not the new choice
    async with app.state.runtime.unit() as unit:
        await unit.orgs.remove_member(orgs["Acme"], user, actor=None)
    with pytest.raises(OAuthError) as left:
        await oauth.refresh_token(
            "http://testserver/token", refresh_token=refreshed["refresh_token"]
        )
    assert left.value.error == "invalid_grant"


async def _enrolled(app: Any, user: str, clock: FrozenClock) -> pyotp.TOTP:
    async with app.state.runtime.unit() as unit:
        enrollment = await unit.mfa.start_totp(user, EMAIL)
    totp = pyotp.TOTP(enrollment.secret)
    async with app.state.runtime.unit() as unit:
        await unit.mfa.confirm_totp(user, totp.at(clock.now()), ip=None)
    clock.advance(timedelta(seconds=30))
    return totp


async def test_an_organization_requiring_mfa_steps_a_password_session_up(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    user, orgs = await _ada(app, ("Strict", "member"))
    async with app.state.runtime.unit() as unit:
        await unit.orgs.update(orgs["Strict"], require_acr=ACR_MFA, actor=None)
    await sign_in(client, EMAIL)  # a password session, from before the authenticator
    totp = await _enrolled(app, user, clock)
    oauth = await _client(app)
    url, verifier = _start(oauth)
    asked = await client.get(url)
    assert asked.status_code == 303
    location = asked.headers["location"]
    assert location.startswith("/login/second-step?"), location
    query = parse_qs(urlsplit(location).query)
    assert query["acr"] == [ACR_MFA]
    next_path = query["next"][0]
    page = await client.get("/login/second-step", params={"next": next_path, "method": "totp"})
    back = await client.post(
        "/login/second-step",
        data={
            "code": totp.at(clock.now()),
            "method": "totp",
            "csrf_token": csrf_from(page.text),
            "next": next_path,
        },
    )
    assert back.status_code == 303 and back.headers["location"] == next_path
    done = await client.get(next_path)
    id_claims, access, _ = await _tokens(client, oauth, done.headers["location"], verifier)
    assert access["org_id"] == id_claims["org_id"] == orgs["Strict"]
    assert "mfa" in access["amr"] and id_claims["acr"] == ACR_MFA


async def test_an_organization_requiring_mfa_tells_a_user_without_a_factor_to_set_one_up(
    app: Any, client: httpx.AsyncClient
) -> None:
    _, orgs = await _ada(app, ("Strict", "member"))
    async with app.state.runtime.unit() as unit:
        await unit.orgs.update(orgs["Strict"], require_acr=ACR_MFA, actor=None)
    await sign_in(client, EMAIL)
    url, _ = _start(await _client(app))
    page = await client.get(url)
    assert page.status_code == 403 and 'id="org-needs-factor"' in page.text
    assert 'href="/account/security?next=' in page.text
    silent = await client.get(url + "&prompt=none")
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["interaction_required"]


async def test_a_refresh_after_the_organization_raised_its_requirement_fails(
    app: Any, client: httpx.AsyncClient
) -> None:
    _, orgs = await _ada(app, ("Acme", "member"))
    oauth = await _client(app)
    await sign_in(client, EMAIL)
    _, access, token = await _signed_in_flow(client, oauth)
    assert access["org_id"] == orgs["Acme"]
    async with app.state.runtime.unit() as unit:
        await unit.orgs.update(orgs["Acme"], require_acr=ACR_MFA, actor=None)
    with pytest.raises(OAuthError) as refused:
        await oauth.refresh_token("http://testserver/token", refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"
