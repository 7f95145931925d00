"""CORS only for public clients' origins, only on the endpoints a page calls."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ostiary.features.clients.service import ClientRegistration


@pytest.fixture
async def spa(app: Any) -> Any:
    async with app.state.runtime.unit() as unit:
        client, _ = await unit.clients.register(
            ClientRegistration(
                name="SPA", public=True, redirect_uris=("https://spa.example:8443/callback",)
            )
        )
        await unit.clients.register(
            ClientRegistration(name="Server", redirect_uris=("https://server.example/cb",))
        )
    return client


async def test_preflight_for_a_public_clients_origin(client: httpx.AsyncClient, spa: Any) -> None:
    response = await client.options(
        "/token",
        headers={"Origin": "https://spa.example:8443", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://spa.example:8443"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "origin", ["https://server.example", "https://evil.example", "https://spa.example"]
)
async def test_no_cors_for_other_origins(client: httpx.AsyncClient, spa: Any, origin: str) -> None:
    preflight = await client.options("/token", headers={"Origin": origin})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    actual = await client.get("/.well-known/jwks.json", headers={"Origin": origin})
    assert "access-control-allow-origin" not in actual.headers


async def test_actual_responses_carry_the_origin(client: httpx.AsyncClient, spa: Any) -> None:
    origin = "https://spa.example:8443"
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        response = await client.get(path, headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
        assert "Origin" in response.headers["vary"]
    revoke = await client.post(
        "/revoke", data={"token": "x", "client_id": spa.client_id}, headers={"Origin": origin}
    )
    assert revoke.status_code == 200
    assert revoke.headers["access-control-allow-origin"] == origin


async def test_browser_pages_never_get_cors(client: httpx.AsyncClient, spa: Any) -> None:
    response = await client.get("/login", headers={"Origin": "https://spa.example:8443"})
    assert "access-control-allow-origin" not in response.headers
