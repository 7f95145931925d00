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


async def test_readyz_when_migrated_and_a_key_signs(client: httpx.AsyncClient, app: Any) -> None:
    await app.state.runtime.ensure_signing_key()
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["migrations"] == "ok"
    assert response.json()["checks"]["signing_key"] == "ok"


async def test_no_signing_key_is_not_ready_and_the_token_endpoint_answers_503(
    client: httpx.AsyncClient, app: Any
) -> None:
    """Issue 9, item 6: a fresh database (migrated, a client, no key yet) is not ready, and a
    token request gets a clear 503, never a 500; once the key exists, both recover."""
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from ostiary.features.clients.service import ClientRegistration

    rt = app.state.runtime
    async with rt.unit() as unit:
        machine, secret = await unit.clients.register(
            ClientRegistration(name="Batch", grant_types=("client_credentials",), scopes=("a",))
        )
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["signing_key"].startswith("no active ES256 signing key")
    token = await client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(machine.client_id, secret)
    )
    assert token.status_code == 503
    assert token.json()["error"] == "temporarily_unavailable"
    assert token.headers["cache-control"] == "no-store"

    await rt.ensure_signing_key()
    assert (await client.get("/readyz")).status_code == 200
    async with AsyncOAuth2Client(
        client_id=machine.client_id,
        client_secret=secret,
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    ) as oauth:
        try:
            issued = await oauth.fetch_token(
                "http://testserver/token", grant_type="client_credentials"
            )
        except OAuthError as exc:  # pragma: no cover - the assertion below names the failure
            pytest.fail(f"client_credentials failed after the key was created: {exc}")
    assert issued["token_type"].lower() == "bearer"


async def test_readyz_not_ready_when_the_key_does_not_open(
    client: httpx.AsyncClient, app: Any, backend: Any, tmp_path: Any, clock: Any
) -> None:
    """A secret key that does not open the active key (changed OSTIARY_SECRET_KEY): not ready."""
    from ostiary.web.app import create_app
    from tests.conftest import make_settings

    await app.state.runtime.ensure_signing_key()
    other = create_app(make_settings(backend, tmp_path), clock=clock)  # another secret key
    transport = httpx.ASGITransport(app=other)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/readyz")
    await other.state.runtime.close()
    assert response.status_code == 503
    assert "does not open" in response.json()["checks"]["signing_key"]


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


@pytest.mark.parametrize(
    ("stamp", "ready"),
    [("9999", True), ("0001", False), ("unknown", False)],
)
async def test_readyz_serves_a_database_a_newer_release_migrated_but_not_an_older_one(
    client: httpx.AsyncClient, app: Any, stamp: str, ready: bool
) -> None:
    """A rolling upgrade: the new release migrates first (its migrations keep the previous
    release working, ARCHITECTURE.md), and this release's nodes must stay in the load balancer
    until they are replaced. A database behind this release's head is not served."""
    from sqlalchemy import text

    from ostiary.storage.sqla.revision import HEAD_REVISION

    await app.state.runtime.ensure_signing_key()
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": stamp})
    try:
        response = await client.get("/readyz")
    finally:
        async with app.state.runtime.engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": HEAD_REVISION}
            )
    assert (response.status_code == 200) is ready, response.text
    migrations = response.json()["checks"]["migrations"]
    assert (migrations == "ok") is ready
    if not ready:
        assert HEAD_REVISION in migrations
