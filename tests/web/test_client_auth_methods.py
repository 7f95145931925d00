"""Client authentication methods at /token, /introspect and /revoke: a client holding a secret
may send it with either secret method (RFC 6749 section 2.3.1); ``private_key_jwt`` (RFC 7523)
and ``none`` clients keep their own; two methods in one request are refused (section 2.3)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock

ISSUER = "http://testserver"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENDPOINTS = {
    "/token": {"grant_type": "client_credentials"},
    "/introspect": {"token": "not-a-token"},
    "/revoke": {"token": "not-a-token"},
}


@pytest.fixture
def clock() -> FrozenClock:
    """Assertions are made with the wall clock, so the server's clock starts there too."""
    return FrozenClock(datetime.now(UTC))


async def _register(app: Any, **kw: Any) -> tuple[str, str | None]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        client, secret = await unit.clients.register(
            ClientRegistration(name="m", grant_types=("client_credentials",), scopes=("x",), **kw)
        )
    return client.client_id, secret


def _credentials(method: str, client_id: str, secret: str) -> dict[str, Any]:
    """httpx request arguments for one secret method."""
    if method == "client_secret_basic":
        return {"auth": (client_id, secret), "data": {}}
    return {"data": {"client_id": client_id, "client_secret": secret}}


async def _call(
    client: httpx.AsyncClient, endpoint: str, credentials: dict[str, Any]
) -> httpx.Response:
    data = {**ENDPOINTS[endpoint], **credentials["data"]}
    return await client.post(endpoint, data=data, auth=credentials.get("auth"))


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("registered", ["client_secret_basic", "client_secret_post"])
async def test_either_secret_method_is_accepted(
    app: Any, client: httpx.AsyncClient, registered: str, endpoint: str
) -> None:
    client_id, secret = await _register(app, auth_method=registered)
    assert secret is not None
    for method in ("client_secret_basic", "client_secret_post"):
        response = await _call(client, endpoint, _credentials(method, client_id, secret))
        assert response.status_code == 200, (method, response.text)
        wrong = await _call(client, endpoint, _credentials(method, client_id, secret + "x"))
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def _assertion(client_id: str, key: ECKey) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/token",
        "exp": now + 60,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_private_key_jwt_client_is_refused_with_a_secret_method(
    app: Any, client: httpx.AsyncClient, endpoint: str
) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    client_id, secret = await _register(
        app, auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]}
    )
    assert secret is None
    for method in ("client_secret_basic", "client_secret_post"):
        response = await _call(client, endpoint, _credentials(method, client_id, "ost_cs_guess"))
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    if endpoint == "/token":  # its own method still works
        own = {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(client_id, key),
        }
        response = await _call(client, endpoint, {"data": own})
        assert response.status_code == 200, response.text


async def test_a_public_client_is_refused_with_a_secret_method(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with app.state.runtime.unit() as unit:
        public, _ = await unit.clients.register(
            ClientRegistration(name="spa", redirect_uris=("https://spa.example/cb",), public=True)
        )
    for method in ("client_secret_basic", "client_secret_post"):
        response = await _call(client, "/revoke", _credentials(method, public.client_id, "s"))
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    alone = await client.post("/revoke", data={"token": "t", "client_id": public.client_id})
    assert alone.status_code == 200


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_two_methods_in_one_request_are_refused(
    app: Any, client: httpx.AsyncClient, endpoint: str
) -> None:
    client_id, secret = await _register(app)
    assert secret is not None
    assertion = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "a.b.c"}
    for credentials in (
        {"auth": (client_id, secret), "data": {"client_secret": secret}},
        {"auth": (client_id, secret), "data": assertion},
        {"data": {"client_id": client_id, "client_secret": secret, **assertion}},
    ):
        response = await _call(client, endpoint, credentials)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
