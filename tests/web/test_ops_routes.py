"""Health, readiness, metrics, JWKS and OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_when_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["migrations"] == "ok"


async def test_readyz_not_ready_on_an_unmigrated_database(
    backend: Any, tmp_path: Any, clock: Any
) -> None:
    from ostiary.web.app import create_app
    from tests.conftest import Backend, make_settings

    empty = Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", None)
    app = create_app(make_settings(empty, tmp_path), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    await app.state.runtime.close()
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/nope/123")
    body = (await client.get("/metrics")).text
    assert 'ostiary_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
    assert 'route="unmatched",status="404"' in body
    assert "ostiary_http_request_duration_seconds_bucket" in body


async def test_jwks_is_public_only_and_cacheable(client: httpx.AsyncClient, app: Any) -> None:
    async with app.state.runtime.unit() as unit:
        key = await unit.keys.ensure_key("ES256")
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age=" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [key.kid]
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(keys[0])


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/login", "/logout", "/account", "/.well-known/jwks.json", "/readyz"):
        assert path in spec["paths"]
    assert (
        "application/x-www-form-urlencoded"
        in (spec["paths"]["/login"]["post"]["requestBody"]["content"])
    )
    assert (await client.get("/docs")).status_code == 200


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc-123"})).headers[
        "x-request-id"
    ] == "abc-123"
    assert len((await client.get("/healthz")).headers["x-request-id"]) == 16
