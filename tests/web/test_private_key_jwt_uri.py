"""private_key_jwt (RFC 7523 section 2.2) with keys fetched from the client's ``jwks_uri``
(RFC 7591 section 2), served by a real HTTP server on 127.0.0.1, driven with Authlib."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import RSAKey

from ostiary.features.clients.assertions import ASSERTION_TYPE
from ostiary.features.clients.service import (
    ClientRegistration,
    InvalidClientMetadata,
)
from ostiary.features.clock import FrozenClock
from ostiary.protocol.destinations import DestinationPolicy
from ostiary.storage.http_jwks import HttpJwksFetcher
from tests.conftest import Backend, make_settings
from tests.storage.jwks_server import FetcherTime, JwksServer, Reply

ISSUER = "http://testserver"


@pytest.fixture
def clock() -> FrozenClock:
    """Assertions are made with the wall clock, so the server's clock starts there too."""
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"})


@pytest.fixture
def jwks_server(key: RSAKey) -> Any:
    with JwksServer() as server:
        server.replies["/jwks.json"] = Reply.json({"keys": [key.as_dict(private=False)]})
        yield server


@pytest.fixture
async def local_app(backend: Backend, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Any]:
    """An app whose operator lets jwks_uri reach loopback over http (as dev mode does)."""
    from ostiary.web.app import create_app

    settings = make_settings(
        backend, tmp_path, jwks_uri_allow_private=True, jwks_uri_allow_http_loopback=True
    )
    application = create_app(settings, clock=clock)
    yield application
    await application.state.runtime.close()


async def _register(app: Any, jwks_uri: str) -> Any:
    """Through the runtime's own wiring: the settings' jwks_uri policy applies."""
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        client, secret = await unit.clients.register(
            ClientRegistration(
                name="keys by uri",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                auth_method="private_key_jwt",
                jwks_uri=jwks_uri,
            )
        )
    assert secret is None
    return client


def _oauth(app: Any, client_id: str, key: RSAKey) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=key.as_pem(private=True).decode(),
        token_endpoint_auth_method=PrivateKeyJWT(f"{ISSUER}/token", alg="RS256"),
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    )


async def test_keys_are_fetched_from_the_jwks_uri_and_a_token_issued(
    local_app: Any, key: RSAKey, jwks_server: JwksServer
) -> None:
    uri = f"http://127.0.0.1:{jwks_server.port}/jwks.json"
    client = await _register(local_app, uri)
    async with _oauth(local_app, client.client_id, key) as oauth:
        for _ in range(2):
            token = await oauth.fetch_token(
                f"{ISSUER}/token", grant_type="client_credentials", scope="models:read"
            )
            assert token["token_type"] == "Bearer" and token["scope"] == "models:read"
            assert token["access_token"].count(".") == 2
    # Fetched once, then served from the cache.
    assert [seen.path for seen in jwks_server.requests] == ["/jwks.json"]


async def test_by_default_a_loopback_jwks_uri_is_refused_and_never_fetched(
    app: Any, key: RSAKey, jwks_server: JwksServer
) -> None:
    with pytest.raises(InvalidClientMetadata, match="loopback"):
        await _register(app, f"https://127.0.0.1:{jwks_server.port}/jwks.json")
    with pytest.raises(InvalidClientMetadata, match="https"):
        await _register(app, f"http://localhost:{jwks_server.port}/jwks.json")
    # A host name is judged when the server resolves it: localhost is 127.0.0.1, refused.
    registered = await _register(app, f"https://localhost:{jwks_server.port}/jwks.json")
    async with _oauth(app, registered.client_id, key) as oauth:
        with pytest.raises(OAuthError) as info:
            await oauth.fetch_token(
                f"{ISSUER}/token", grant_type="client_credentials", scope="models:read"
            )
    assert info.value.error == "invalid_client"
    assert jwks_server.requests == []


def _assertion(client_id: str, key: RSAKey) -> str:
    """Signed with joserfc, the key id in the header as a rotating client sends it."""
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/token",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


async def _token_with(app: Any, client_id: str, key: RSAKey) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        return await http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "scope": "models:read",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": _assertion(client_id, key),
            },
        )


async def test_a_rotated_key_is_fetched_at_its_first_use_and_made_up_ids_are_not(
    local_app: Any, key: RSAKey, jwks_server: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenID Connect Core 1.0 section 10.1.1: the client publishes a new key and signs with it
    at once; an unknown key id makes the server download the set again, at most once per
    refetch interval."""
    runtime = local_app.state.runtime
    clock = FetcherTime().install(monkeypatch)
    runtime.jwks_fetcher = HttpJwksFetcher(
        DestinationPolicy(allow_private=True, allow_http_loopback=True), refetch_interval=0.3
    )
    client = await _register(local_app, f"http://127.0.0.1:{jwks_server.port}/jwks.json")
    assert (await _token_with(local_app, client.client_id, key)).status_code == 200
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    # Made before the clock starts: an RSA key can take longer than the refetch interval.
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k3"})
    jwks_server.replies["/jwks.json"] = Reply.json({"keys": [rotated.as_dict(private=False)]})
    clock.advance(0.35)  # the cached set is older than the refetch interval
    assert (await _token_with(local_app, client.client_id, rotated)).status_code == 200
    assert len(jwks_server.requests) == 2
    # A made-up key id right after: refused without another download.
    response = await _token_with(local_app, client.client_id, stranger)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert len(jwks_server.requests) == 2
