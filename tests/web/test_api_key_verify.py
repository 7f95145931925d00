"""``POST /api/v1/keys/verify`` through the app (issue 12, section 3): caller authentication
(a gateway's service-account key with ``keys:verify``, or the key itself; anything else 401
with ``WWW-Authenticate``), one body for every kind of invalid key, allowlist reasons,
organization scoping of a gateway, bad input as 4xx JSON, concurrency on ``last_used_at``,
the fast lane and the OpenAPI document."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest

from ostiary.web.routes.api_keys import VERIFY_PATH

PEER = "203.0.113.7"  # the test client's address (tests/conftest.py)


async def _setup(app: Any, clock: Any) -> dict[str, Any]:
    rt = app.state.runtime
    async with rt.unit() as unit:
        owner = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = await unit.orgs.create("Acme", actor=None)
        other = await unit.orgs.create("Other", actor=None)
        await unit.orgs.add_member(org.id, owner.id, actor=None)
        await unit.rbac.assign(org.id, ("user", owner.id), "owner", actor=None)
        gateway = await unit.api_keys.create_service_account(
            org.id, "gateway", roles=["admin"], actor=None
        )
        other_gateway = await unit.api_keys.create_service_account(
            other.id, "gateway", roles=["admin"], actor=None
        )
        keys = {
            "gateway": await unit.api_keys.create_key(
                org.id, ("service_account", gateway.id), permissions=["keys:verify"], actor=None
            ),
            "gateway_no_verify": await unit.api_keys.create_key(
                org.id, ("service_account", gateway.id), permissions=["keys:read"], actor=None
            ),
            "other_gateway": await unit.api_keys.create_key(
                other.id, ("service_account", other_gateway.id), actor=None
            ),
            "user_verify": await unit.api_keys.create_key(
                org.id, ("user", owner.id), permissions=["keys:verify"], actor=None
            ),
            "good": await unit.api_keys.create_key(
                org.id,
                ("user", owner.id),
                permissions=["models:invoke", "keys:read"],
                models=["gpt-x"],
                allowed_ips=["10.0.0.0/8"],
                expires_at=clock.now() + timedelta(days=30),
                actor=None,
            ),
            "revoked": await unit.api_keys.create_key(org.id, ("user", owner.id), actor=None),
            "expiring": await unit.api_keys.create_key(
                org.id, ("user", owner.id), expires_at=clock.now() + timedelta(hours=1), actor=None
            ),
        }
        await unit.api_keys.revoke_key(org.id, keys["revoked"].key.id, actor=None)
    return {"org": org, "owner": owner, "gateway": gateway, "keys": keys}


async def _verify(
    client: httpx.AsyncClient, bearer: str | None, body: Any, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return await client.post(VERIFY_PATH, json=body, headers=headers, **kwargs)


async def test_a_gateway_verifies_a_key_and_learns_what_it_may_do(
    app: Any, client: httpx.AsyncClient, clock: Any
) -> None:
    s = await _setup(app, clock)
    good = s["keys"]["good"]
    response = await _verify(client, s["keys"]["gateway"].secret, {"key": good.secret})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "valid": True,
        "key_id": good.key.id,
        "owner": {"type": "user", "id": s["owner"].id},
        "organization_id": s["org"].id,
        "project_id": None,
        "permissions": ["keys:read", "models:invoke"],
        "models": ["gpt-x"],
        "allowed_ips": ["10.0.0.0/8"],
        "expires_at": (clock.now() + timedelta(days=30)).isoformat(),
    }


async def test_every_invalid_key_gets_one_body(
    app: Any, client: httpx.AsyncClient, clock: Any
) -> None:
    s = await _setup(app, clock)
    keys = s["keys"]
    clock.advance(timedelta(hours=1))
    good = keys["good"].secret
    invalid = [
        "nonsense",
        "ost_sk_" + secrets.token_hex(12) + good[31:],  # unknown id
        good[:-3] + ("xyz" if not good.endswith("xyz") else "abc"),  # wrong secret
        keys["revoked"].secret,
        keys["expiring"].secret,
        keys["other_gateway"].secret,  # another organization's key
    ]
    bodies = []
    for candidate in invalid:
        response = await _verify(
            client, keys["gateway"].secret, {"key": candidate, "ip": "1.1.1.1", "model": "m"}
        )
        assert response.status_code == 200
        bodies.append(response.content)
    assert set(bodies) == {b'{"valid":false}'}


async def test_allowlist_reasons(app: Any, client: httpx.AsyncClient, clock: Any) -> None:
    s = await _setup(app, clock)
    gateway, good = s["keys"]["gateway"].secret, s["keys"]["good"].secret
    ok = await _verify(client, gateway, {"key": good, "ip": "10.2.3.4", "model": "gpt-x"})
    assert ok.json()["valid"] is True
    ip = await _verify(client, gateway, {"key": good, "ip": "192.0.2.1"})
    assert ip.json() == {"valid": False, "reason": "ip_not_allowed"}
    model = await _verify(client, gateway, {"key": good, "model": "gpt-z"})
    assert model.json() == {"valid": False, "reason": "model_not_allowed"}


async def test_a_key_may_verify_itself_and_nothing_else(
    app: Any, client: httpx.AsyncClient, clock: Any
) -> None:
    s = await _setup(app, clock)
    keys = s["keys"]
    own = keys["revoked"].secret
    response = await _verify(
        client, keys["user_verify"].secret, {"key": keys["user_verify"].secret}
    )
    assert response.json()["key_id"] == keys["user_verify"].key.id
    # An invalid key presented as its own bearer is not authenticated.
    refused = await _verify(client, own, {"key": own})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Bearer realm="ostiary"')
    assert refused.json()["error"] == "invalid_token"
    # A user's key, even with keys:verify, and a gateway key without it: 403 insufficient_scope.
    for caller in (keys["user_verify"].secret, keys["gateway_no_verify"].secret):
        response = await _verify(client, caller, {"key": keys["good"].secret})
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer ost_sk_nope", "bearer  "],
)
async def test_anything_but_a_valid_bearer_key_is_401_with_a_challenge(
    app: Any, client: httpx.AsyncClient, clock: Any, authorization: str | None
) -> None:
    s = await _setup(app, clock)
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.post(
        VERIFY_PATH, json={"key": s["keys"]["good"].secret}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "invalid_token"


async def test_the_gateway_key_own_ip_allowlist_applies_to_the_caller(
    app: Any, client: httpx.AsyncClient, clock: Any
) -> None:
    s = await _setup(app, clock)
    async with app.state.runtime.unit() as unit:
        fenced = await unit.api_keys.create_key(
            s["org"].id,
            ("service_account", s["gateway"].id),
            allowed_ips=["198.51.100.0/24"],
            actor=None,
        )
        open_key = await unit.api_keys.create_key(
            s["org"].id,
            ("service_account", s["gateway"].id),
            allowed_ips=[f"{PEER}/32"],
            actor=None,
        )
    good = s["keys"]["good"].secret
    assert (await _verify(client, fenced.secret, {"key": good})).status_code == 401
    assert (await _verify(client, open_key.secret, {"key": good})).json()["valid"] is True


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"key": 5}', "application/json", 400),
        (b'{"key": ""}', "application/json", 400),
        (b'{"key": "a", "ip": ["x"]}', "application/json", 400),
        (b'{"key": "' + b"a" * 600 + b'"}', "application/json", 400),
        (b'{"key": "a"}', "text/plain", 415),
        (b"key=a", "application/x-www-form-urlencoded", 415),
        (b'{"key": "' + b"a" * 5000 + b'"}', "application/json", 413),
        (b'{"key": "\\u0000"}', "application/json", 200),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    app: Any,
    client: httpx.AsyncClient,
    clock: Any,
    content: bytes,
    content_type: str,
    status: int,
) -> None:
    s = await _setup(app, clock)
    response = await client.post(
        VERIFY_PATH,
        content=content,
        headers={
            "Authorization": f"Bearer {s['keys']['gateway'].secret}",
            "Content-Type": content_type,
        },
    )
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["error"] == "invalid_request"
    else:
        assert response.json() == {"valid": False}


async def test_parallel_verifications_write_last_used_once(
    app: Any, client: httpx.AsyncClient, clock: Any
) -> None:
    s = await _setup(app, clock)
    good = s["keys"]["good"]
    writes: list[str] = []
    rt = app.state.runtime
    from ostiary.storage.sqla.apikey_repositories import SqlApiKeyStore

    original = SqlApiKeyStore.touch

    async def counting(self: Any, key_id: str, now: Any, older_than: Any) -> bool:
        writes.append(key_id)
        return await original(self, key_id, now, older_than)

    SqlApiKeyStore.touch = counting  # type: ignore[method-assign]
    try:
        responses = await asyncio.gather(
            *(_verify(client, s["keys"]["gateway"].secret, {"key": good.secret}) for _ in range(24))
        )
    finally:
        SqlApiKeyStore.touch = original  # type: ignore[method-assign]
    assert all(r.json()["valid"] for r in responses)
    assert writes.count(good.key.id) == 1
    async with rt.unit() as unit:
        stored = await unit.api_keys.get_key(s["org"].id, good.key.id)
    assert stored.last_used_at == clock.now()


async def test_served_by_the_fast_lane_and_documented(app: Any, client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][VERIFY_PATH]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == ["key"]
    assert operation["security"] == [{"apiKey": []}]
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    # A GET is the router's 405, not the lane's.
    assert (await client.get(VERIFY_PATH)).status_code == 405
    from ostiary.web.fastlane import FastLane

    lane = app.front.app.app
    assert isinstance(lane, FastLane)
    assert ("POST", VERIFY_PATH) in lane._lanes


@pytest.mark.parametrize("change", ["revoke", "rotate"])
async def test_a_change_by_another_process_is_seen_at_the_next_request(
    app: Any, client: httpx.AsyncClient, clock: Any, settings: Any, change: str
) -> None:
    """SQLite: the CLI (another process, here another runtime on the same file) revokes or
    rotates a key this server has cached; the next verification sees it (the route's
    ``PRAGMA data_version`` catch-up). Other nodes on PostgreSQL: test_api_key_nodes.py."""
    if app.state.runtime.external_writes is None:
        pytest.skip("the catch-up after another process's write is SQLite's")
    from ostiary.web.runtime import Runtime

    s = await _setup(app, clock)
    gateway, good = s["keys"]["gateway"].secret, s["keys"]["good"]
    assert (await _verify(client, gateway, {"key": good.secret})).json()["valid"] is True
    assert app.state.runtime.api_key_cache.get(good.key.id) is not None
    cli = Runtime(settings, clock=clock)
    try:
        async with cli.unit() as unit:
            if change == "revoke":
                await unit.api_keys.revoke_key(s["org"].id, good.key.id, actor=None)
            else:
                await unit.api_keys.rotate_key(
                    s["org"].id, good.key.id, overlap=timedelta(0), actor=None
                )
    finally:
        await cli.close()
    assert (await _verify(client, gateway, {"key": good.secret})).json() == {"valid": False}


async def test_the_answer_follows_the_key_owners_permissions_at_the_next_request(
    app: Any, client: httpx.AsyncClient, clock: Any
) -> None:
    """The answer is encoded once per outcome: a change of the owner's roles is a new one."""
    s = await _setup(app, clock)
    rt = app.state.runtime
    async with rt.unit() as unit:
        member = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        await unit.orgs.add_member(s["org"].id, member.id, actor=None)
        await unit.rbac.assign(s["org"].id, ("user", member.id), "member", actor=None)
        key = await unit.api_keys.create_key(s["org"].id, ("user", member.id), actor=None)
    gateway = s["keys"]["gateway"].secret
    for _ in range(2):
        answer = (await _verify(client, gateway, {"key": key.secret})).json()
        assert "models:invoke" in answer["permissions"]
    async with rt.unit() as unit:
        await unit.rbac.set_roles(s["org"].id, ("user", member.id), ["reader"], actor=None)
    answer = (await _verify(client, gateway, {"key": key.secret})).json()
    assert answer["permissions"] == ["keys:read", "members:read", "models:read"]
