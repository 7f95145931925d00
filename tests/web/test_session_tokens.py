"""Refresh grants bound to the browser session, and offline ones (OpenID Connect Core 1.0
section 11; OpenID Back-Channel Logout 1.0 section 2.7), and every way a session ends taking
its tokens along: sign-out, idle and absolute timeouts, a second sign-in in the same browser,
the per-user session cap, and the operator's end-sessions (ASVS 5.0 V7.4.3, V7.4.5).

In-process over ASGI on every backend, with Authlib building the authorization requests and a
frozen clock; the e2e suites repeat the sign-out case against a real server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.web.app import create_app
from tests.conftest import Backend, make_settings
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "ada@example.com"
REDIRECT = "https://app.example/callback"
ISSUER = "http://testserver"
SESSION_BOUND = "openid profile email"
OFFLINE = "openid profile email offline_access"


@pytest.fixture
async def setup(app: Any) -> dict[str, Any]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        user = await unit.accounts.create_user(EMAIL, PASSWORD, name="Ada", email_verified=True)
        third, third_secret = await unit.clients.register(
            ClientRegistration(name="Notebook", redirect_uris=(REDIRECT,))
        )
        first, first_secret = await unit.clients.register(
            ClientRegistration(name="Console", redirect_uris=(REDIRECT,), first_party=True)
        )
    return {
        "app": app,
        "user": user,
        "third": (third.client_id, third_secret),
        "first": (first.client_id, first_secret),
    }


def _browser(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _browser(app) as b:
        yield b


async def _tokens(
    setup: dict[str, Any],
    browser: httpx.AsyncClient,
    scope: str,
    *,
    client: str = "third",
    expect_consent: bool | None = None,
    **extra: str,
) -> dict[str, Any]:
    """The code flow through sign-in and consent (allowed); the token response."""
    client_id, secret = setup[client]
    oauth = AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope=scope,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=setup["app"]),
        base_url=ISSUER,
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier, **extra)
    response = await browser.get(url)
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        next_path = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
        await sign_in(browser, EMAIL, next_path=next_path)
        response = await browser.get(url)
    shown = response.status_code == 200 and "consent-form" in response.text
    if expect_consent is not None:
        assert shown is expect_consent, response.text[:500]
    if shown:
        request = html.unescape(response.text.split('name="request" value="')[1].split('"')[0])
        response = await browser.post(
            "/authorize/consent",
            data={"csrf_token": csrf_from(response.text), "request": request, "decision": "allow"},
        )
    assert response.status_code == 303, response.text[:500]
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    async with oauth:
        token = await oauth.fetch_token(
            f"{ISSUER}/token", authorization_response=location, code_verifier=verifier
        )
    return dict(token)


async def _post(setup: dict[str, Any], path: str, data: dict[str, str]) -> httpx.Response:
    async with _browser(setup["app"]) as rp:
        return await rp.post(path, data=data, auth=setup["third"])


async def _introspect(setup: dict[str, Any], token: str) -> dict[str, Any]:
    body: dict[str, Any] = (await _post(setup, "/introspect", {"token": token})).json()
    return body


async def _refresh(setup: dict[str, Any], refresh_token: str) -> httpx.Response:
    return await _post(
        setup, "/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def _claims(browser: httpx.AsyncClient, token: str, alg: str = "ES256") -> dict[str, Any]:
    keys = KeySet.import_key_set((await browser.get("/.well-known/jwks.json")).json())
    return dict(jwt.decode(token, keys, algorithms=[alg]).claims)


async def _sign_out(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/account")
    response = await browser.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303


async def _assert_dead(setup: dict[str, Any], token: dict[str, Any]) -> None:
    """Both tokens of a response inactive, and the refresh token refused."""
    for value in (token["access_token"], token["refresh_token"]):
        assert await _introspect(setup, value) == {"active": False}
    refused = await _refresh(setup, token["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# -- session-bound and offline grants across sign-out ----------------------------------------


async def test_sign_out_ends_session_bound_refresh_tokens_offline_ones_survive(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    bound = await _tokens(setup, browser, SESSION_BOUND)
    offline = await _tokens(setup, browser, OFFLINE, expect_consent=True)
    assert "offline_access" not in bound["scope"].split()
    assert "offline_access" in offline["scope"].split()
    assert (await _introspect(setup, bound["refresh_token"]))["active"] is True
    await _sign_out(browser)
    clock.advance(timedelta(seconds=1))
    await _assert_dead(setup, bound)
    # The access token minted in the session carries its sid and ends with it ...
    assert await _introspect(setup, offline["access_token"]) == {"active": False}
    # ... the offline refresh token does not (Core section 11, Back-Channel Logout 2.7).
    assert (await _introspect(setup, offline["refresh_token"]))["active"] is True
    renewed = await _refresh(setup, offline["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert "sid" not in await _claims(browser, fresh["access_token"])
    assert "sid" not in await _claims(browser, fresh["id_token"], "RS256")
    assert (await _introspect(setup, fresh["access_token"]))["active"] is True


async def test_idle_timeout_ends_session_bound_refresh_and_refreshing_is_not_activity(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    idle = setup["app"].state.runtime.session_policy.idle_timeout
    bound = await _tokens(setup, browser, SESSION_BOUND)
    offline = await _tokens(setup, browser, OFFLINE)
    clock.advance(idle - timedelta(minutes=1))
    first = await _refresh(setup, bound["refresh_token"])
    assert first.status_code == 200, first.text
    bound = first.json()
    offline = (await _refresh(setup, offline["refresh_token"])).json()
    clock.advance(timedelta(minutes=2))  # idle since the sign-in: the refresh did not count
    assert (await browser.get("/account")).status_code == 303
    assert await _introspect(setup, bound["refresh_token"]) == {"active": False}
    refused = await _refresh(setup, bound["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert (await _refresh(setup, offline["refresh_token"])).status_code == 200


async def test_session_bound_refresh_expires_with_the_sessions_absolute_timeout(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    rt = setup["app"].state.runtime
    policy = rt.session_policy
    signed_in_at = clock.now()
    bound = await _tokens(setup, browser, SESSION_BOUND)
    offline = await _tokens(setup, browser, OFFLINE)
    absolute_end = signed_in_at + policy.absolute_timeout
    assert (await _introspect(setup, bound["refresh_token"]))["exp"] == int(
        absolute_end.timestamp()
    )
    assert (await _introspect(setup, offline["refresh_token"]))["exp"] == int(
        (signed_in_at + rt.oauth_policy.refresh_token_ttl).timestamp()
    )
    # An active browser keeps the session (and its refresh token) until the absolute end.
    step = policy.idle_timeout / 2
    while clock.now() + step < absolute_end:
        clock.advance(step)
        assert (await browser.get("/account")).status_code == 200
    renewed = await _refresh(setup, bound["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    clock.advance(absolute_end - clock.now())
    assert (await browser.get("/account")).status_code == 303
    assert await _introspect(setup, renewed.json()["refresh_token"]) == {"active": False}
    assert (await _refresh(setup, renewed.json()["refresh_token"])).status_code == 400
    assert (await _refresh(setup, offline["refresh_token"])).status_code == 200


# -- consent for offline access (Core section 11) --------------------------------------------


async def test_offline_access_needs_explicit_consent_even_for_a_first_party_client(
    setup: dict[str, Any], browser: httpx.AsyncClient
) -> None:
    bound = await _tokens(setup, browser, SESSION_BOUND, client="first", expect_consent=False)
    assert bound["scope"] == SESSION_BOUND
    offline = await _tokens(setup, browser, OFFLINE, client="first", expect_consent=True)
    assert "offline_access" in offline["scope"].split()
    again = await _tokens(setup, browser, OFFLINE, client="first", expect_consent=False)
    assert "offline_access" in again["scope"].split()


async def test_offline_access_is_ignored_without_consent_under_prompt_none(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await _tokens(setup, browser, SESSION_BOUND, expect_consent=True)
    # prompt=none cannot ask: offline_access is ignored (not consent_required) ...
    silent = await _tokens(setup, browser, OFFLINE, prompt="none")
    assert silent["scope"] == SESSION_BOUND
    # ... and the refresh token it got is bound to the session.
    await _sign_out(browser)
    clock.advance(timedelta(seconds=1))
    await _assert_dead(setup, silent)


# -- sessions that end otherwise -------------------------------------------------------------


async def test_signing_in_again_ends_the_previous_session_and_its_tokens_on_every_node(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    settings = make_settings(backend, tmp_path)
    node_a, node_b = create_app(settings, clock=clock), create_app(settings, clock=clock)
    rt_b = node_b.state.runtime
    listener = None
    if rt_b.revocation_bus is not None:
        listener = asyncio.create_task(rt_b.revocation_bus.listen(rt_b.revoked.add))
        await asyncio.sleep(0.2)  # subscribed
    browser, other_node = _browser(node_a), _browser(node_b)
    try:
        async with node_a.state.runtime.unit() as unit:
            await unit.keys.ensure_keys()
            await unit.accounts.create_user(EMAIL, PASSWORD)
            web, web_secret = await unit.clients.register(
                ClientRegistration(name="Notebook", redirect_uris=(REDIRECT,))
            )
        setup = {"app": node_a, "third": (web.client_id, web_secret)}
        bound = await _tokens(setup, browser, SESSION_BOUND)
        offline = await _tokens(setup, browser, OFFLINE)
        old_cookie = browser.cookies["ostiary_session"]
        other_node.cookies.set("ostiary_session", old_cookie)
        assert (await other_node.get("/account")).status_code == 200  # now cached on node B
        clock.advance(timedelta(seconds=1))
        page = await browser.get("/account")
        again = await browser.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        )
        assert again.status_code == 303
        assert browser.cookies["ostiary_session"] != old_cookie
        clock.advance(timedelta(seconds=1))
        await _assert_dead(setup, bound)
        assert (await _introspect(setup, offline["refresh_token"]))["active"] is True
        if listener is not None:
            for _ in range(50):  # pub/sub: milliseconds, bounded wait
                if len(rt_b.revoked):
                    break
                await asyncio.sleep(0.02)
        else:
            async with rt_b.unit() as unit:
                await unit.revocation.sync()  # what the 1 s poll does
        assert (await other_node.get("/account")).status_code == 303  # not from B's cache
        assert (await browser.get("/account")).status_code == 200  # the new session
    finally:
        if listener is not None:
            listener.cancel()
        await browser.aclose()
        await other_node.aclose()
        await node_a.state.runtime.close()
        await rt_b.close()


async def test_the_session_cap_ends_the_oldest_sessions_tokens(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    # OSTIARY_SESSION_MAX_PER_USER: a sign-in beyond it ends the user's oldest session.
    rt = setup["app"].state.runtime
    rt.session_policy = dataclasses.replace(rt.session_policy, max_per_user=2)
    oldest = await _tokens(setup, browser, SESSION_BOUND)
    assert (await _introspect(setup, oldest["access_token"]))["active"] is True
    for _ in range(2):
        clock.advance(timedelta(seconds=1))
        async with _browser(setup["app"]) as newer:
            assert (await sign_in(newer, EMAIL)).status_code == 303
    clock.advance(timedelta(seconds=1))
    assert (await browser.get("/account")).status_code == 303
    await _assert_dead(setup, oldest)


async def test_end_user_sessions_ends_offline_grants_too_and_new_sign_ins_work(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    bound = await _tokens(setup, browser, SESSION_BOUND)
    offline = await _tokens(setup, browser, OFFLINE)
    async with setup["app"].state.runtime.unit() as unit:
        ended = await unit.end_user_sessions(setup["user"].id, actor="test", reason="admin")
    assert ended == (1, 2)
    clock.advance(timedelta(seconds=1))
    assert (await browser.get("/account")).status_code == 303
    await _assert_dead(setup, bound)
    await _assert_dead(setup, offline)
    fresh = await _tokens(setup, browser, OFFLINE)
    assert (await _introspect(setup, fresh["access_token"]))["active"] is True
    assert (await _refresh(setup, fresh["refresh_token"])).status_code == 200


async def test_a_disabled_then_enabled_users_new_tokens_work_old_ones_stay_revoked(
    setup: dict[str, Any], browser: httpx.AsyncClient, clock: FrozenClock
) -> None:
    before = await _tokens(setup, browser, OFFLINE)
    async with setup["app"].state.runtime.unit() as unit:
        await unit.accounts.disable(EMAIL, actor="test")
    clock.advance(timedelta(seconds=1))
    async with setup["app"].state.runtime.unit() as unit:
        enabled = await unit.accounts.enable(EMAIL, actor="test")
    assert enabled.disabled is False
    clock.advance(timedelta(seconds=1))
    await _assert_dead(setup, before)
    after = await _tokens(setup, browser, OFFLINE)
    assert (await _introspect(setup, after["access_token"]))["active"] is True
    renewed = await _refresh(setup, after["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert (await _introspect(setup, renewed.json()["access_token"]))["active"] is True
