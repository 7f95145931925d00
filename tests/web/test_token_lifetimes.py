"""Every token's lifetime is bounded, and what depends on the bound outlives the tokens
(issue 9, item 2).

A client may be registered with its own access and ID token lifetimes, up to
``OSTIARY_CLIENT_TOKEN_TTL_MAX_SECONDS``; a revocation (RFC 7662 section 2.2: a revoked token
is not active; RFC 7009) is kept as long as any token it covers can live, and a retired
signing key stays in JWKS (OpenID Connect Core 1.0 section 10.1.1) until every token it signed
has expired. Each setting is tried at its extremes against the others: a client's lifetime far
longer than the global ones, and the cap lowered after the client was registered. Time passes
on a FrozenClock; ``prune`` is what the node's 1 s revocation poll does to expired entries.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from ostiary.config import Settings
from ostiary.features.clients.models import Client
from ostiary.features.clients.service import ClientRegistration, InvalidClientMetadata
from ostiary.features.clock import FrozenClock
from ostiary.web.app import create_app
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.helpers import PASSWORD, csrf_from
from tests.web.test_oauth_flow import EMAIL, ISSUER, REDIRECT, _authorize

GLOBAL_TTL = 30  # the shortest the global settings allow
CLIENT_TTL = 3600


def _settings(backend: Backend, tmp_path: Path, **extra: Any) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        access_token_ttl_seconds=GLOBAL_TTL,
        id_token_ttl_seconds=GLOBAL_TTL,
        **extra,
    )


@pytest.fixture
async def node(backend: Backend, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Any]:
    app = create_app(_settings(backend, tmp_path), clock=clock)
    yield app
    await app.state.runtime.close()


@pytest.fixture
async def browser(node: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=node, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as c:
        yield c


async def _register(rt: Runtime, **ttls: int) -> tuple[Client, str]:
    async with rt.unit() as unit:
        await unit.keys.ensure_keys()
        await unit.accounts.create_user(EMAIL, PASSWORD, name="Grace", email_verified=True)
        client, secret = await unit.clients.register(
            ClientRegistration(name="Long-lived", redirect_uris=(REDIRECT,), **ttls)
        )
    assert secret is not None
    return client, secret


async def _code_flow(
    app: Any, browser: httpx.AsyncClient, client: Client, secret: str
) -> dict[str, Any]:
    oauth = AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope="openid profile email offline_access",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
    response = await _authorize(browser, url)
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    token = await oauth.fetch_token(
        f"{ISSUER}/token", authorization_response=location, code_verifier=verifier
    )
    return dict(token)


async def _state(
    browser: httpx.AsyncClient, access_token: str, auth: tuple[str, str]
) -> tuple[bool, int]:
    """(active at /introspect, /userinfo status)."""
    introspection = await browser.post("/introspect", data={"token": access_token}, auth=auth)
    info = await browser.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return bool(introspection.json()["active"]), info.status_code


async def _end(how: str, app: Any, browser: httpx.AsyncClient, token: str, auth: Any) -> None:
    if how == "revoked":
        response = await browser.post("/revoke", data={"token": token}, auth=auth)
        assert response.status_code == 200
    elif how == "signed_out":
        page = await browser.get("/account")
        response = await browser.post("/logout", data={"csrf_token": csrf_from(page.text)})
        assert response.status_code == 303
    else:
        async with app.state.runtime.unit() as unit:
            await unit.accounts.disable(EMAIL)


@pytest.mark.parametrize("how", ["revoked", "signed_out", "disabled"])
async def test_a_revocation_outlives_a_client_token_longer_than_the_global_ttl(
    node: Any, browser: httpx.AsyncClient, clock: FrozenClock, how: str
) -> None:
    rt = node.state.runtime
    client, secret = await _register(rt, access_token_ttl=CLIENT_TTL, id_token_ttl=CLIENT_TTL)
    token = await _code_flow(node, browser, client, secret)
    auth = (client.client_id, secret)
    assert token["expires_in"] == CLIENT_TTL
    assert await _state(browser, token["access_token"], auth) == (True, 200)
    await _end(how, node, browser, token["access_token"], auth)
    assert await _state(browser, token["access_token"], auth) == (False, 401)

    # Well past every global lifetime, and just before the client's token expires: still dead
    # on this node after the poll prunes, and on a node that starts now and loads the table.
    start = clock.now()
    for at in (GLOBAL_TTL + 10, CLIENT_TTL - 1):
        clock.advance(start + timedelta(seconds=at) - clock.now())
        rt.revoked.prune(clock.now())
        assert await _state(browser, token["access_token"], auth) == (False, 401), at
        fresh = Runtime(rt.settings, clock=clock)
        try:
            async with fresh.unit() as unit:
                await unit.revocation.sync()
                assert await unit.oauth.validate_access_token(token["access_token"]) is None
        finally:
            await fresh.close()


async def test_a_lowered_cap_bounds_the_tokens_of_clients_registered_before(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    first = _settings(backend, tmp_path)
    before = create_app(first, clock=clock)
    client, secret = await _register(
        before.state.runtime, access_token_ttl=CLIENT_TTL, id_token_ttl=CLIENT_TTL
    )
    await before.state.runtime.close()
    cap = 600
    assert first.secret_key is not None
    lowered = _settings(
        backend,
        tmp_path,
        secret_key=first.secret_key.get_secret_value(),
        client_token_ttl_max_seconds=cap,
    )
    app = create_app(lowered, clock=clock)  # the operator lowered the cap and restarted
    rt = app.state.runtime
    assert rt.settings.tokens.max_token_ttl == timedelta(seconds=cap)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
            token = await _code_flow(app, browser, client, secret)
            auth = (client.client_id, secret)
            keys = KeySet.import_key_set((await browser.get("/.well-known/jwks.json")).json())
            access = jwt.decode(token["access_token"], keys, algorithms=["ES256"]).claims
            id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
            assert token["expires_in"] == cap
            assert access["exp"] - access["iat"] == cap and id_token["exp"] - id_token["iat"] == cap
            await _end("revoked", app, browser, token["access_token"], auth)
            start = clock.now()
            clock.advance(timedelta(seconds=cap - 1))
            rt.revoked.prune(clock.now())
            assert await _state(browser, token["access_token"], auth) == (False, 401)
            # Registering above the cap is refused (the CLI goes through the same service).
            async with rt.unit() as unit:
                with pytest.raises(InvalidClientMetadata, match="OSTIARY_CLIENT_TOKEN_TTL_MAX"):
                    await unit.clients.register(
                        ClientRegistration(
                            name="x", redirect_uris=(REDIRECT,), access_token_ttl=cap + 1
                        )
                    )
                with pytest.raises(InvalidClientMetadata, match="ID token lifetime"):
                    await unit.clients.register(
                        ClientRegistration(name="x", redirect_uris=(REDIRECT,), id_token_ttl=29)
                    )
                accepted, _ = await unit.clients.register(
                    ClientRegistration(
                        name="y", redirect_uris=(REDIRECT,), access_token_ttl=cap, id_token_ttl=cap
                    )
                )
            assert accepted.access_token_ttl == cap
            assert clock.now() - start < timedelta(seconds=cap)
    finally:
        await rt.close()


@pytest.mark.parametrize("cap", [None, CLIENT_TTL])
async def test_a_retired_key_stays_in_jwks_until_its_longest_token_expired(
    backend: Backend, tmp_path: Path, clock: FrozenClock, cap: int | None
) -> None:
    extra = {} if cap is None else {"client_token_ttl_max_seconds": cap}
    app = create_app(_settings(backend, tmp_path, **extra), clock=clock)
    rt = app.state.runtime
    longest = cap or 86400  # the default cap: a client may have tokens of a day
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
            client, secret = await _register(rt, access_token_ttl=longest, id_token_ttl=longest)
            old_kid = (await browser.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]
            async with rt.unit() as unit:
                new = await unit.keys.rotate("ES256")
            # The last tokens the old key signs: just before its successor activates.
            clock.advance(new.activates_at - clock.now() - timedelta(seconds=1))
            token = await _code_flow(app, browser, client, secret)
            assert extract_compact(token["access_token"].encode()).headers()["kid"] == old_kid
            assert token["expires_in"] == longest
            clock.advance(timedelta(seconds=1))  # the new key signs from now on

            async def published() -> dict[str, Any]:
                async with rt.unit() as unit:  # what /.well-known/jwks.json serves
                    jwks: dict[str, Any] = await unit.keys.jwks()
                return jwks

            for elapsed in (GLOBAL_TTL + 10, longest // 2, longest - 1):
                clock.advance(new.activates_at + timedelta(seconds=elapsed) - clock.now())
                jwks = await published()
                assert old_kid in {k["kid"] for k in jwks["keys"]}, elapsed
                # An independent verifier with that JWKS still accepts the token.
                jwt.decode(token["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
            clock.advance(new.activates_at + timedelta(seconds=longest) - clock.now())
            # Every token it signed has expired.
            assert old_kid not in {k["kid"] for k in (await published())["keys"]}
    finally:
        await rt.close()


async def test_a_cap_below_the_global_ttl_bounds_clients_by_the_global_ttl(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    """The other extreme: the global lifetime is the longest, the cap shorter."""
    settings = make_settings(
        backend, tmp_path, access_token_ttl_seconds=7200, client_token_ttl_max_seconds=600
    )
    assert settings.tokens.max_token_ttl == timedelta(seconds=7200)
    app = create_app(settings, clock=clock)
    rt = app.state.runtime
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    try:
        async with rt.unit() as unit:
            await unit.keys.ensure_keys()
            with pytest.raises(InvalidClientMetadata, match="30 to 7200 seconds"):
                await unit.clients.register(
                    ClientRegistration(
                        name="m", grant_types=("client_credentials",), access_token_ttl=7201
                    )
                )
            machine, secret = await unit.clients.register(
                ClientRegistration(
                    name="m", grant_types=("client_credentials",), access_token_ttl=1200
                )
            )
        assert secret is not None
        auth = (machine.client_id, secret)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            token = (
                await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
            ).json()
            assert token["expires_in"] == 1200  # shorter than the global TTL: kept as is
            await http.post("/revoke", data={"token": token["access_token"]}, auth=auth)
            clock.advance(timedelta(seconds=1199))
            rt.revoked.prune(clock.now())
            body = (
                await http.post("/introspect", data={"token": token["access_token"]}, auth=auth)
            ).json()
            assert body == {"active": False}
    finally:
        await rt.close()
