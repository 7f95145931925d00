"""What a revocation covers, and what it must not (issue 9, item 3 and item 5's last bullet).

- RFC 7009 section 2.1: revoking a refresh token invalidates the access tokens "based on the
  same authorization grant": every access token minted from the refresh token's family (the
  code redemption that started it and each refresh), and nothing of another grant.
- "Issued at or before": a revocation made at 12:00:00.3 does not cover a token issued at
  12:00:00.5 (it would be born revoked), and still covers one issued at 12:00:00.0.

Driven in-process by Authlib (an independent OAuth client) with a FrozenClock.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from tests.web.helpers import PASSWORD
from tests.web.test_oauth_flow import (
    EMAIL,
    ISSUER,
    REDIRECT,
    _authorize,
    _code_redemption,
    _oauth,
)


@pytest.fixture
async def web_client(app: Any) -> tuple[str, str]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        await unit.accounts.create_user(EMAIL, PASSWORD, name="Grace", email_verified=True)
        client, secret = await unit.clients.register(
            ClientRegistration(name="Notebook", redirect_uris=(REDIRECT,))
        )
    assert secret is not None
    return client.client_id, secret


async def _tokens(
    app: Any, browser: httpx.AsyncClient, web_client: tuple[str, str]
) -> tuple[AsyncOAuth2Client, dict[str, Any]]:
    """A code flow in ``browser`` (signing in the first time, then in the same session)."""
    oauth = _oauth(app, *web_client)
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
    response = await _authorize(browser, url)
    location = response.headers["location"]
    assert "code" in parse_qs(urlsplit(location).query), location
    token = await oauth.fetch_token(
        f"{ISSUER}/token", authorization_response=location, code_verifier=verifier
    )
    return oauth, dict(token)


async def _active(browser: httpx.AsyncClient, token: str, auth: tuple[str, str]) -> bool:
    response = await browser.post("/introspect", data={"token": token}, auth=auth)
    assert response.status_code == 200
    return bool(response.json()["active"])


async def _userinfo(browser: httpx.AsyncClient, token: str) -> int:
    response = await browser.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_revoking_a_refresh_token_revokes_the_access_tokens_of_its_family(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock, web_client: tuple[str, str]
) -> None:
    oauth, first = await _tokens(app, client, web_client)
    clock.advance(timedelta(seconds=5))
    refreshed = dict(
        await oauth.refresh_token(f"{ISSUER}/token", refresh_token=first["refresh_token"])
    )
    clock.advance(timedelta(seconds=5))
    _, other = await _tokens(app, client, web_client)  # another grant, same session and client
    access = (first["access_token"], refreshed["access_token"])
    for token in (*access, other["access_token"]):
        assert await _active(client, token, web_client)
    clock.advance(timedelta(seconds=5))

    response = await client.post(
        "/revoke",
        data={"token": refreshed["refresh_token"], "token_type_hint": "refresh_token"},
        auth=web_client,
    )
    assert response.status_code == 200
    for token in (*access, refreshed["refresh_token"]):
        assert not await _active(client, token, web_client)
    for token in access:
        assert await _userinfo(client, token) == 401
    # The other grant is not "based on the same authorization grant".
    assert await _active(client, other["access_token"], web_client)
    assert await _active(client, other["refresh_token"], web_client)
    assert await _userinfo(client, other["access_token"]) == 200


async def test_a_replayed_code_revokes_the_access_tokens_refreshed_from_it(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock, web_client: tuple[str, str]
) -> None:
    """RFC 6749 section 4.1.2: "revoke (when possible) all tokens previously issued based on
    that authorization code", including those of later refreshes."""
    oauth, form = await _code_redemption(app, client, *web_client)
    first = (await client.post("/token", data=form, auth=web_client)).json()
    clock.advance(timedelta(seconds=5))
    refreshed = dict(
        await oauth.refresh_token(f"{ISSUER}/token", refresh_token=first["refresh_token"])
    )
    assert await _active(client, refreshed["access_token"], web_client)
    replay = await client.post("/token", data=form, auth=web_client)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    for token in (first["access_token"], refreshed["access_token"], refreshed["refresh_token"]):
        assert not await _active(client, token, web_client)


async def test_a_new_code_after_refresh_reuse_in_the_same_second_is_not_born_revoked(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock, web_client: tuple[str, str]
) -> None:
    """The issue's reproduction: reuse revokes the sign-in's tokens (a user_client entry);
    the same browser session then gets a new code, in the same second."""
    assert clock.now().microsecond == 0  # the second starts here
    oauth, first = await _tokens(app, client, web_client)
    rotated = dict(
        await oauth.refresh_token(f"{ISSUER}/token", refresh_token=first["refresh_token"])
    )
    clock.advance(timedelta(milliseconds=300))
    with pytest.raises(OAuthError, match="invalid_grant"):  # reuse of the spent token
        await oauth.refresh_token(f"{ISSUER}/token", refresh_token=first["refresh_token"])
    clock.advance(timedelta(milliseconds=200))
    _, fresh = await _tokens(app, client, web_client)  # the same session, 0.2 s later
    assert clock.now().microsecond == 500_000  # still the same second
    assert await _active(client, fresh["access_token"], web_client), "born revoked"
    assert await _userinfo(client, fresh["access_token"]) == 200
    # Issued before the revocation, in the same second: revoked, no rounding the other way.
    for token in (first["access_token"], rotated["access_token"], rotated["refresh_token"]):
        assert not await _active(client, token, web_client)
    assert await _userinfo(client, rotated["access_token"]) == 401
