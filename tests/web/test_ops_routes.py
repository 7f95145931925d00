"""Health, readiness, metrics, JWKS and OpenAPI."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest


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
    assert (await client.get("/docs")).status_code == 404  # off outside dev mode by default


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc-123"})).headers[
        "x-request-id"
    ] == "abc-123"
    assert len((await client.get("/healthz")).headers["x-request-id"]) == 16


async def _get(settings_overrides: dict[str, Any], path: str, *, client_ip: str, **ctx: Any) -> Any:
    from ostiary.web.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(ctx["backend"], ctx["tmp_path"], **settings_overrides))
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path)
    finally:
        await app.state.runtime.close()


@pytest.mark.parametrize(
    ("overrides", "served"),
    [
        ({}, False),
        ({"dev_mode": True}, True),
        ({"api_docs": True}, True),
        ({"dev_mode": True, "api_docs": False}, False),
    ],
)
async def test_docs_only_in_dev_mode_or_when_enabled(
    backend: Any, tmp_path: Any, overrides: dict[str, Any], served: bool
) -> None:
    ctx = {"backend": backend, "tmp_path": tmp_path}
    docs = await _get(overrides, "/docs", client_ip="203.0.113.7", **ctx)
    assert docs.status_code == (200 if served else 404)
    # The schema stays available either way.
    assert (await _get(overrides, "/openapi.json", client_ip="203.0.113.7", **ctx)).is_success


async def test_docs_page_is_pinned_with_sri_under_a_csp(backend: Any, tmp_path: Any) -> None:
    from ostiary.web.routes.docs import SWAGGER_UI_VERSION

    ctx = {"backend": backend, "tmp_path": tmp_path}
    page = await _get({"api_docs": True}, "/docs", client_ip="203.0.113.7", **ctx)
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    # Every external asset names one exact version and carries an integrity digest.
    assets = re.findall(r'(?:src|href)="(https://[^"]+)" integrity="(sha384-[^"]+)"', page.text)
    assert {url.rsplit("/", 1)[1] for url, _ in assets} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    assert all(f"swagger-ui-dist@{SWAGGER_UI_VERSION}/" in url for url, _ in assets)
    assert re.fullmatch(r"\d+\.\d+\.\d+", SWAGGER_UI_VERSION)
    assert len(re.findall(r"https://", page.text)) == len(assets)  # nothing else external
    # The one inline script is the one the policy allows by hash.
    (inline,) = re.findall(r"<script>(.*?)</script>", page.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in directives["script-src"]


@pytest.mark.parametrize(
    ("allow", "client_ip", "status"),
    [
        (None, "203.0.113.7", 200),
        ("127.0.0.1, 10.0.0.0/8", "10.1.2.3", 200),
        ("127.0.0.1, 10.0.0.0/8", "127.0.0.1", 200),
        ("127.0.0.1, 10.0.0.0/8", "203.0.113.7", 403),
        ("2001:db8::/32", "2001:db8::5", 200),
        ("10.0.0.0/8", "::ffff:10.0.0.9", 200),
        ("", "127.0.0.1", 403),
    ],
)
async def test_metrics_can_be_restricted_by_address(
    backend: Any, tmp_path: Any, allow: str | None, client_ip: str, status: int
) -> None:
    ctx = {"backend": backend, "tmp_path": tmp_path}
    response = await _get({"metrics_allow_ips": allow}, "/metrics", client_ip=client_ip, **ctx)
    assert response.status_code == status
    if status == 200:
        assert "ostiary_http_requests_total" in response.text
    else:
        assert "ostiary_http" not in response.text


def test_metrics_allow_ips_must_be_addresses(tmp_path: Any) -> None:
    from ostiary.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="OSTIARY_METRICS_ALLOW_IPS") as info:
        load_settings(data_dir=tmp_path, metrics_allow_ips="10.0.0.0/8, example.com")
    assert "example.com" in str(info.value) and "\n" not in str(info.value)
