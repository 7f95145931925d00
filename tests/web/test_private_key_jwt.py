"""private_key_jwt client authentication (RFC 7523), with Authlib and hand-made assertions."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock

ISSUER = "http://testserver"
TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def clock() -> FrozenClock:
    """Assertions are made with the wall clock, so the server's clock starts there too."""
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
async def keyed_client(app: Any) -> tuple[Any, RSAKey]:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_key("ES256")
        client, secret = await unit.clients.register(
            ClientRegistration(
                name="signed",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                auth_method="private_key_jwt",
                jwks={"keys": [key.as_dict(private=False)]},
            )
        )
    assert secret is None
    return client, key


def _assertion(client_id: str, key: Any, alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/token",
        "exp": now + 60,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


async def _token(client: httpx.AsyncClient, assertion: str) -> httpx.Response:
    return await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": TYPE,
            "client_assertion": assertion,
        },
    )


async def test_authlib_private_key_jwt(app: Any, keyed_client: tuple[Any, RSAKey]) -> None:
    client, key = keyed_client
    oauth = AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=key.as_pem(private=True).decode(),
        token_endpoint_auth_method=PrivateKeyJWT(f"{ISSUER}/token", alg="RS256"),
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    )
    token = await oauth.fetch_token(
        f"{ISSUER}/token", grant_type="client_credentials", scope="models:read"
    )
    assert token["token_type"] == "Bearer" and token["scope"] == "models:read"


async def test_replayed_assertion_is_refused(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey]
) -> None:
    c, key = keyed_client
    assertion = _assertion(c.client_id, key)
    assert (await _token(client, assertion)).status_code == 200
    replay = await _token(client, assertion)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://other.example/token"},
        {"iss": "someone-else"},
        {"exp": int(time.time()) - 3600},
        {"exp": int(time.time()) + 86400},
        {"jti": None},
        {"nbf": int(time.time()) + 3600},
    ],
)
async def test_bad_claims_are_refused(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey], overrides: dict[str, Any]
) -> None:
    c, key = keyed_client
    claims = {k: v for k, v in overrides.items() if v is not None}
    assertion = _assertion(c.client_id, key, **claims)
    if overrides.get("jti", "x") is None:
        now = int(time.time())
        assertion = jwt.encode(
            {"alg": "RS256", "kid": "k1"},
            {"iss": c.client_id, "sub": c.client_id, "aud": f"{ISSUER}/token", "exp": now + 60},
            key,
        )
    response = await _token(client, assertion)
    assert response.status_code == 401


async def test_foreign_key_and_symmetric_algorithms_are_refused(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey]
) -> None:
    c, _ = keyed_client
    other = RSAKey.generate_key(2048)
    assert (await _token(client, _assertion(c.client_id, other))).status_code == 401
    ec = ECKey.generate_key("P-256")
    assert (await _token(client, _assertion(c.client_id, ec, alg="ES256"))).status_code == 401
    hmac_key = OctKey.import_key(b"x" * 32)
    forged = jwt.encode(
        {"alg": "HS256"},
        {
            "iss": c.client_id,
            "sub": c.client_id,
            "aud": f"{ISSUER}/token",
            "exp": int(time.time()) + 60,
            "jti": "j",
        },
        hmac_key,
    )
    assert (await _token(client, forged)).status_code == 401


async def test_garbage_assertion_is_a_client_error(client: httpx.AsyncClient) -> None:
    for value in ("not-a-jwt", "a.b.c", "x" * 10000):
        response = await _token(client, value)
        assert response.status_code == 401
    wrong_type = await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:x",
            "client_assertion": "a.b.c",
        },
    )
    assert wrong_type.status_code == 401
