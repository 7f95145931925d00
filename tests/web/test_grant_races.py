"""Races on single-use grants, with the interleaving forced: every racer reads the code or the
refresh token before any racer writes.

- RFC 6749 section 4.1.2: an authorization code is used once; a second use is denied and the
  tokens issued for the code SHOULD be revoked. Two concurrent redemptions are a second use:
  the loser revokes what the winner got (features/oauth/grants/authorization_code.py).
- RFC 9700 section 4.14.2 / OAuth 2.1 section 4.3.1: a rotated refresh token presented twice
  means it leaked; the server cannot tell the attacker from the client, so the family is
  revoked, the winner's new refresh token included (features/oauth/grants/refresh_token.py).

What decides the winner is the compare-and-set in the store (storage/sqla/oauth_repositories.py:
``consumed_at IS NULL``, ``used_at IS NULL``). Letting requests run concurrently and hoping is
not enough to test it: a racer that reads after the winner wrote sees the spend and takes the
replay path, so the tests stayed green with the guards removed. Here a test double delegates to
the real SQL store and holds each request's first read:

- PostgreSQL: at an ``asyncio.Barrier``; both racers have read before either writes, for real.
- SQLite: every unit holds the database's write lock from its first statement (uow.py), so a
  second racer cannot read before the first commits (a barrier would only wait for the lock
  timeout). The double hands the later racer the record as the first racer read it, which is
  what it would have read had it come first: the store's guard alone must then stop it.

Each test fails with its guard removed (checked by hand: the ``used_at IS NULL`` of both
rotation statements, the ``consumed_at IS NULL`` of the code spend, and the revocation in the
lost-race branch of the code grant).
"""

from __future__ import annotations

import asyncio
import html
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.features.oauth.models import AuthorizationCode, RefreshFamily, RefreshToken
from ostiary.storage.sqla.oauth_repositories import (
    SqlAuthorizationCodeStore,
    SqlRefreshTokenStore,
)
from tests.conftest import Backend
from tests.web.helpers import PASSWORD, csrf_from, sign_in

T = TypeVar("T")
EMAIL = "ada@example.com"
REDIRECT = "https://app.example/callback"
ISSUER = "http://testserver"
RACERS = 2


class FirstReads:
    """The racers' first reads, held so that all of them happen before any write."""

    def __init__(self, backend: Backend) -> None:
        self.armed = False
        self._barrier = asyncio.Barrier(RACERS) if backend.name == "postgres" else None
        self._seen: Any = None
        self.reads = 0

    async def hold(self, read: Callable[[], Awaitable[T]]) -> T:
        result = await read()
        if not self.armed:
            return result
        self.reads += 1
        if self._barrier is not None:
            async with asyncio.timeout(10):  # a racer stuck behind a lock fails, not hangs
                await self._barrier.wait()
            return result
        if self._seen is None:
            self._seen = result
        return self._seen  # type: ignore[no-any-return]


@pytest.fixture
def first_reads(
    backend: Backend, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> FirstReads:
    """The runtime's SQL stores, with each unit's (request's) first read held.

    The racer whose spend fails moves the clock on a second before it revokes: its revocation
    then unambiguously follows the winner's tokens, which are revoked because they were issued
    before it (not because of how equal timestamps compare).
    """
    reads = FirstReads(backend)
    after_the_winner = timedelta(seconds=1)

    class HeldCodes(SqlAuthorizationCodeStore):
        held = False

        async def get(self, code_hash: str) -> AuthorizationCode | None:
            if self.held:  # the lost-race branch reads the winner's record: not held
                return await super().get(code_hash)
            self.held = True
            return await reads.hold(lambda: super(HeldCodes, self).get(code_hash))

        async def consume(
            self, code_hash: str, now: datetime, family_id: str | None, access_jti: str
        ) -> bool:
            spent = await super().consume(code_hash, now, family_id, access_jti)
            if reads.armed and not spent:
                clock.advance(after_the_winner)
            return spent

    class HeldRefresh(SqlRefreshTokenStore):
        held = False

        async def get_token(self, token_hash: str) -> tuple[RefreshToken, RefreshFamily] | None:
            if self.held:
                return await super().get_token(token_hash)
            self.held = True
            return await reads.hold(lambda: super(HeldRefresh, self).get_token(token_hash))

        async def rotate(self, spent_hash: str, now: datetime, successor: RefreshToken) -> bool:
            spent = await super().rotate(spent_hash, now, successor)
            if reads.armed and not spent:
                clock.advance(after_the_winner)
            return spent

    monkeypatch.setattr("ostiary.web.runtime.SqlAuthorizationCodeStore", HeldCodes)
    monkeypatch.setattr("ostiary.web.runtime.SqlRefreshTokenStore", HeldRefresh)
    return reads


@pytest.fixture
async def registered(app: Any) -> tuple[str, str]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        await unit.accounts.create_user(EMAIL, PASSWORD, email_verified=True)
        client, secret = await unit.clients.register(
            ClientRegistration(name="Racer", redirect_uris=(REDIRECT,))
        )
    return client.client_id, secret


async def _code(
    app: Any, browser: httpx.AsyncClient, client_id: str, secret: str
) -> tuple[str, str]:
    """Sign in and consent as a person would; the code and its PKCE verifier."""
    oauth = AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope="openid",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
    response = await browser.get(url)
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        next_path = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
        await sign_in(browser, EMAIL, next_path=next_path)
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
    assert response.status_code == 303, response.text
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    return code, verifier


async def _race(
    client: httpx.AsyncClient, form: dict[str, str], auth: tuple[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The winner's tokens and the loser's error."""
    results = await asyncio.gather(
        *(client.post("/token", data=form, auth=auth) for _ in range(RACERS))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400], [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    loser = next(r for r in results if r.status_code == 400).json()
    return winner, loser


async def _active(client: httpx.AsyncClient, token: str, auth: tuple[str, str]) -> bool:
    response = await client.post("/introspect", data={"token": token}, auth=auth)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


async def _refresh(
    client: httpx.AsyncClient, refresh_token: str, auth: tuple[str, str]
) -> httpx.Response:
    return await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=auth,
    )


async def test_code_redeemed_twice_at_once_one_wins_and_its_tokens_are_revoked(
    app: Any,
    client: httpx.AsyncClient,
    registered: tuple[str, str],
    first_reads: FirstReads,
) -> None:
    auth = registered
    code, verifier = await _code(app, client, *registered)
    first_reads.armed = True
    winner, loser = await _race(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth,
    )
    first_reads.armed = False
    assert first_reads.reads == RACERS  # both racers read the code unspent
    assert loser["error"] == "invalid_grant"
    # RFC 6749 section 4.1.2: what the code produced is revoked.
    assert not await _active(client, winner["access_token"], auth)
    refused = await _refresh(client, winner["refresh_token"], auth)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_refresh_token_used_twice_at_once_one_wins_and_the_family_is_revoked(
    app: Any,
    client: httpx.AsyncClient,
    registered: tuple[str, str],
    first_reads: FirstReads,
) -> None:
    auth = registered
    code, verifier = await _code(app, client, *registered)
    issued = await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=auth,
    )
    assert issued.status_code == 200, issued.text
    first_reads.armed = True
    winner, loser = await _race(
        client,
        {"grant_type": "refresh_token", "refresh_token": issued.json()["refresh_token"]},
        auth,
    )
    first_reads.armed = False
    assert first_reads.reads == RACERS
    assert loser["error"] == "invalid_grant"
    # RFC 9700 section 4.14.2: the family is revoked, the winner's successor with it, and so
    # are the access tokens of this user and client.
    refused = await _refresh(client, winner["refresh_token"], auth)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert not await _active(client, winner["access_token"], auth)
    assert not await _active(client, issued.json()["access_token"], auth)
