"""API keys on two nodes (issue 12, section 3): a revocation, a rotation without overlap, a
removed member, a disabled or deleted service account, made on node A, stop the key on node
B at its next request, with no wait and no fan-out (no node caches key rows). A key's
permissions follow its owner's on node B once the RBAC invalidation arrives (the fan-out
of test_permission_nodes.py). Two runtimes on one database stand for two replicas, as in
test_revocation_nodes.py."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ostiary.features.clock import FrozenClock
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.test_revocation_nodes import _until


@asynccontextmanager
async def _nodes(settings: Any) -> AsyncIterator[tuple[Runtime, Runtime]]:
    clock = FrozenClock()
    node_a, node_b = Runtime(settings, clock=clock), Runtime(settings, clock=clock)
    try:
        yield node_a, node_b
    finally:
        await node_a.close()
        await node_b.close()


async def _valid(rt: Runtime, key: str) -> bool:
    async with rt.unit() as unit:
        return (await unit.api_keys.verify(key)).valid


Stop = Callable[[Any, dict[str, Any]], Awaitable[Any]]


async def _revoke(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.revoke_key(s["org"], s["key_id"], actor=None)


async def _rotate(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.rotate_key(s["org"], s["key_id"], overlap=timedelta(0), actor=None)


async def _remove_member(unit: Any, s: dict[str, Any]) -> None:
    await unit.orgs.remove_member(s["org"], s["user"], actor=None)


async def _disable_account(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.set_service_account_disabled(s["org"], s["account"], True, actor=None)


async def _delete_account(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.delete_service_account(s["org"], s["account"], actor=None)


STOPS: dict[str, tuple[str, Stop]] = {
    "revoke": ("user", _revoke),
    "rotate_without_overlap": ("user", _rotate),
    "remove_member": ("user", _remove_member),
    "disable_service_account": ("service_account", _disable_account),
    "delete_service_account": ("service_account", _delete_account),
}


async def _setup(node: Runtime, owner_type: str) -> dict[str, Any]:
    async with node.unit() as unit:
        owner = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = (await unit.orgs.create("Two nodes", actor=None)).id
        for who, role in ((owner.id, "owner"), (user.id, "member")):
            await unit.orgs.add_member(org, who, actor=None)
            await unit.rbac.assign(org, ("user", who), role, actor=None)
        account = await unit.api_keys.create_service_account(
            org, "bot", roles=["member"], actor=None
        )
        holder = ("user", user.id) if owner_type == "user" else ("service_account", account.id)
        issued = await unit.api_keys.create_key(org, holder, actor=None)
    return {
        "org": org,
        "user": user.id,
        "account": account.id,
        "key_id": issued.key.id,
        "secret": issued.secret,
    }


@pytest.mark.parametrize("stop", list(STOPS))
async def test_a_change_on_node_a_stops_the_key_on_node_b_at_once(
    backend: Backend, tmp_path: Path, stop: str
) -> None:
    settings = make_settings(backend, tmp_path, redis_url=None)  # no fan-out at all
    owner_type, apply = STOPS[stop]
    async with _nodes(settings) as (node_a, node_b):
        s = await _setup(node_a, owner_type)
        assert await _valid(node_b, s["secret"])
        async with node_a.unit() as unit:
            await apply(unit, s)
        assert not await _valid(node_b, s["secret"])
        assert not await _valid(node_a, s["secret"])


async def test_permissions_on_node_b_follow_the_owners_after_the_fan_out(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(backend, tmp_path, redis_url=None)
    async with _nodes(settings) as (node_a, node_b):
        s = await _setup(node_a, "user")
        async with node_b.unit() as unit:
            before = (await unit.api_keys.verify(s["secret"])).principal
        assert before is not None and "models:invoke" in before.permissions
        async with node_a.unit() as unit:
            await unit.rbac.set_roles(s["org"], ("user", s["user"]), ["reader"], actor=None)

        async def narrowed() -> bool:
            async with node_b.unit() as unit:
                if node_b.external_writes is not None:
                    await node_b.catch_up(unit)
                else:
                    await unit.revocation.sync()
                principal = (await unit.api_keys.verify(s["secret"])).principal
            return principal is not None and "models:invoke" not in principal.permissions

        await _until(narrowed)
