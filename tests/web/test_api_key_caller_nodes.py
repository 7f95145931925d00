"""``POST /api/v1/keys/verify``: the gateway's own key is verified once per node
(features/apikeys/callers.py) and trusted again only while what that rests on holds. A change
of the gateway key (revoked, rotated), of its service account (disabled, deleted, its roles),
or of its organization is refused at the next request, on the node that made it and on another
node once the fan-out arrives (Redis pub/sub, or the poll of the ``revocations`` table and
SQLite's catch-up); the key's expiry and the end of a rotation's overlap are refused at once;
the key's IP allowlist is checked at every request. Two apps on one database stand for two
replicas, as in test_api_key_nodes.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ostiary.features.clock import FrozenClock
from ostiary.web.app import create_app
from ostiary.web.routes.api_keys import VERIFY_PATH
from ostiary.web.runtime import Runtime
from tests.conftest import Backend
from tests.web.nodes import PATHS, hear, node_settings, poll
from tests.web.test_revocation_nodes import _stop, _until

PEER = "203.0.113.7"
Change = Callable[[Any, dict[str, Any]], Awaitable[Any]]


async def _revoke(unit: Any, w: dict[str, Any]) -> None:
    await unit.api_keys.revoke_key(w["org"], w["gateway_key_id"], actor=None)


async def _rotate(unit: Any, w: dict[str, Any]) -> None:
    await unit.api_keys.rotate_key(w["org"], w["gateway_key_id"], overlap=timedelta(0), actor=None)


async def _disable(unit: Any, w: dict[str, Any]) -> None:
    await unit.api_keys.set_service_account_disabled(w["org"], w["account"], True, actor=None)


async def _delete(unit: Any, w: dict[str, Any]) -> None:
    await unit.api_keys.delete_service_account(w["org"], w["account"], actor=None)


async def _roles(unit: Any, w: dict[str, Any]) -> None:
    await unit.rbac.set_roles(w["org"], ("service_account", w["account"]), ["reader"], actor=None)


async def _delete_org(unit: Any, w: dict[str, Any]) -> None:
    await unit.orgs.delete(w["org"], actor=None)


CHANGES: dict[str, tuple[Change, int]] = {  # the change, and the answer after it
    "revoke": (_revoke, 401),
    "rotate_without_overlap": (_rotate, 401),
    "disable_service_account": (_disable, 401),
    "delete_service_account": (_delete, 401),
    "roles": (_roles, 403),  # reader: no keys:verify
    "delete_organization": (_delete_org, 401),
}


async def _world(rt: Runtime, **gateway_key: Any) -> dict[str, Any]:
    async with rt.unit() as unit:
        owner = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = (await unit.orgs.create("Gateways", actor=None)).id
        await unit.orgs.add_member(org, owner.id, actor=None)
        await unit.rbac.assign(org, ("user", owner.id), "owner", actor=None)
        account = await unit.api_keys.create_service_account(
            org, "gateway", roles=["admin"], actor=None
        )
        gateway = await unit.api_keys.create_key(
            org,
            ("service_account", account.id),
            permissions=["keys:verify"],
            actor=None,
            **gateway_key,
        )
        member = await unit.api_keys.create_key(org, ("user", owner.id), actor=None)
    return {
        "org": org,
        "account": account.id,
        "gateway": gateway.secret,
        "gateway_key_id": gateway.key.id,
        "member": member.secret,
    }


@asynccontextmanager
async def _client(app: Any, address: str = PEER) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _ask(app: Any, gateway: str, member: str, address: str = PEER) -> int:
    """The verify route's answer to the gateway: 200 (the member key is valid), or the
    refusal's status."""
    async with _client(app, address) as client:
        response = await client.post(
            VERIFY_PATH, json={"key": member}, headers={"Authorization": f"Bearer {gateway}"}
        )
    if response.status_code == 200:
        assert response.json()["valid"] is True
    return response.status_code


def _cached(rt: Runtime) -> int:
    return len(rt.api_key_callers)


def _entry(rt: Runtime) -> Any:
    return next(iter(rt.api_key_callers._entries.values()))


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_on_the_same_node_refuses_the_cached_gateway_at_once(
    app: Any, change: str
) -> None:
    rt = app.state.runtime
    w = await _world(rt)
    assert await _ask(app, w["gateway"], w["member"]) == 200
    assert _cached(rt) == 1
    known = _entry(rt)
    assert await _ask(app, w["gateway"], w["member"]) == 200
    assert _entry(rt) is known  # used again
    make, refusal = CHANGES[change]
    async with rt.unit() as unit:
        await make(unit, w)
    assert await _ask(app, w["gateway"], w["member"]) == refusal
    assert await _ask(app, w["gateway"], w["member"]) == refusal


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_on_node_a_refuses_the_gateway_cached_on_node_b(
    backend: Backend, tmp_path: Path, change: str, path: str
) -> None:
    settings = node_settings(backend, tmp_path, path)
    clock = FrozenClock()
    app_a, app_b = create_app(settings, clock=clock), create_app(settings, clock=clock)
    node_a, node_b = app_a.state.runtime, app_b.state.runtime
    background: asyncio.Task[None] | None = None
    try:
        w = await _world(node_a)
        background = await hear(path, node_a, node_b)
        assert await _ask(app_b, w["gateway"], w["member"]) == 200
        assert _cached(node_b) == 1
        make, refusal = CHANGES[change]
        async with node_a.unit() as unit:
            await make(unit, w)
        assert await _ask(app_a, w["gateway"], w["member"]) == refusal
        if path == "poll":
            await poll(node_b)
            assert await _ask(app_b, w["gateway"], w["member"]) == refusal
        else:

            async def refused() -> bool:
                return await _ask(app_b, w["gateway"], w["member"]) == refusal

            await _until(refused)
    finally:
        await _stop(background)
        await node_a.close()
        await node_b.close()


async def test_an_expired_gateway_key_is_refused_at_once(app: Any, clock: Any) -> None:
    rt = app.state.runtime
    w = await _world(rt, expires_at=clock.now() + timedelta(hours=1))
    assert await _ask(app, w["gateway"], w["member"]) == 200
    assert _cached(rt) == 1
    clock.advance(timedelta(minutes=59, seconds=59))
    assert await _ask(app, w["gateway"], w["member"]) == 200
    clock.advance(timedelta(seconds=1))
    assert await _ask(app, w["gateway"], w["member"]) == 401


async def test_the_replaced_secret_is_refused_once_the_overlap_ends(app: Any, clock: Any) -> None:
    rt = app.state.runtime
    w = await _world(rt)
    assert await _ask(app, w["gateway"], w["member"]) == 200
    async with rt.unit() as unit:
        rotated = await unit.api_keys.rotate_key(
            w["org"], w["gateway_key_id"], overlap=timedelta(minutes=5), actor=None
        )
    assert await _ask(app, w["gateway"], w["member"]) == 200  # within the overlap
    assert await _ask(app, rotated.secret, w["member"]) == 200
    assert _cached(rt) == 2  # the old secret (until the overlap ends) and the new one
    clock.advance(timedelta(minutes=5))
    assert await _ask(app, w["gateway"], w["member"]) == 401
    assert await _ask(app, rotated.secret, w["member"]) == 200


async def test_the_gateway_key_ip_allowlist_is_checked_at_every_request(app: Any) -> None:
    rt = app.state.runtime
    w = await _world(rt, allowed_ips=[f"{PEER}/32"])
    assert await _ask(app, w["gateway"], w["member"]) == 200
    assert _cached(rt) == 1
    assert await _ask(app, w["gateway"], w["member"], address="198.51.100.9") == 401
    assert await _ask(app, w["gateway"], w["member"]) == 200
    # Refused first, from outside: nothing is kept; then allowed from inside.
    rt.api_key_callers.clear()
    assert await _ask(app, w["gateway"], w["member"], address="198.51.100.9") == 401
    assert _cached(rt) == 0
    assert await _ask(app, w["gateway"], w["member"]) == 200


async def test_refusals_are_not_kept(app: Any) -> None:
    rt = app.state.runtime
    w = await _world(rt)
    wrong = w["gateway"][:-2] + ("aa" if not w["gateway"].endswith("aa") else "bb")
    assert await _ask(app, wrong, w["member"]) == 401
    async with rt.unit() as unit:
        await unit.api_keys.set_service_account_disabled(w["org"], w["account"], True, actor=None)
    assert await _ask(app, w["gateway"], w["member"]) == 401
    assert _cached(rt) == 0
    async with rt.unit() as unit:  # enabled again: no invalidation needed, nothing was kept
        await unit.api_keys.set_service_account_disabled(w["org"], w["account"], False, actor=None)
    assert await _ask(app, w["gateway"], w["member"]) == 200


async def test_a_unit_that_changed_permissions_keeps_nothing(app: Any) -> None:
    """Inside a unit that changed roles, reads see uncommitted writes (features/rbac/service.py
    ``EffectivePermissions.stamp`` is None): the answer is given but not kept for others."""
    rt = app.state.runtime
    w = await _world(rt)
    async with rt.unit() as unit:
        await unit.rbac.set_roles(
            w["org"], ("service_account", w["account"]), ["admin", "member"], actor=None
        )
        caller = await unit.api_key_verifier.authenticate_caller(w["gateway"], PEER)
        assert caller is not None and caller.key_id == w["gateway_key_id"]
    assert _cached(rt) == 0
    assert await _ask(app, w["gateway"], w["member"]) == 200
    assert _cached(rt) == 1
