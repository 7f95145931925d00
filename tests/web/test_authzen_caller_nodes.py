"""The decision API's callers are verified once per node (features/policy/callers.py) and
trusted again only while what that rests on holds: a change on another node (the caller's role
taken away, the caller removed from the organization, the organization renamed, the caller's
user disabled) reaches this node's next decision through the revocation fan-out (Redis pub/sub,
or the poll of the ``revocations`` table and SQLite's catch-up), and the cached caller is
refused then. Two runtimes on one database stand for two replicas, as in
test_policy_nodes.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ostiary.web.routes.authzen import authenticate_caller
from ostiary.web.runtime import Runtime
from tests.conftest import Backend
from tests.web.nodes import PATHS, hear, node_settings, two_nodes
from tests.web.test_authzen import _token
from tests.web.test_revocation_nodes import _stop, _until

Change = Callable[[Any, dict[str, str]], Awaitable[Any]]


async def _unassign(unit: Any, world: dict[str, str]) -> None:
    await unit.rbac.unassign(world["org"], ("user", world["pep"]), "admin", actor=None)


async def _remove(unit: Any, world: dict[str, str]) -> None:
    await unit.orgs.remove_member(world["org"], world["pep"], actor=None)


async def _rename(unit: Any, world: dict[str, str]) -> None:
    await unit.orgs.update(world["org"], slug=f"renamed-{secrets.token_hex(3)}", actor=None)


async def _disable(unit: Any, world: dict[str, str]) -> None:
    await unit.accounts.disable(world["email"], actor=None)


CHANGES: dict[str, tuple[Change, int]] = {  # the change, and the answer after it
    "role": (_unassign, 403),
    "member": (_remove, 403),
    "organization": (_rename, 403),
    "user": (_disable, 401),
}


async def _world(rt: Runtime) -> dict[str, str]:
    email = f"pep-{secrets.token_hex(4)}@example.com"
    async with rt.unit() as unit:
        pep = (await unit.accounts.create_user(email, secrets.token_urlsafe(18))).id
        org = await unit.orgs.create("Callers", slug=f"callers-{secrets.token_hex(3)}", actor=None)
        await unit.orgs.add_member(org.id, pep, actor=None)
        await unit.rbac.assign(org.id, ("user", pep), "admin", actor=None)
    token = await _token(rt, pep)
    return {"pep": pep, "email": email, "org": org.id, "slug": org.slug, "token": token}


async def _caller(rt: Runtime, world: dict[str, str]) -> str | int:
    """The organization the caller decides in (named by slug), or the refusal's status."""
    async with rt.unit() as unit:
        try:
            org_id, _, user = await authenticate_caller(
                rt, unit, world["token"], world["slug"], "127.0.0.1"
            )
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status is None:
                raise
            return int(status)
    assert user == world["pep"]
    return org_id


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_on_node_a_reaches_the_callers_cached_on_node_b(
    backend: Backend, tmp_path: Path, change: str, path: str
) -> None:
    settings = node_settings(backend, tmp_path, path)
    background: asyncio.Task[None] | None = None
    async with two_nodes(settings) as (node_a, node_b):
        world = await _world(node_a)
        background = await hear(path, node_a, node_b)
        try:
            assert await _caller(node_b, world) == world["org"]
            assert len(node_b.decision_callers) == 1  # cached on node B
            assert await _caller(node_b, world) == world["org"]  # and used
            make, refusal = CHANGES[change]
            async with node_a.unit() as unit:
                await make(unit, world)
            assert await _caller(node_a, world) == refusal
            if path == "poll":
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def refused() -> bool:
                return await _caller(node_b, world) == refusal

            await _until(refused)
        finally:
            await _stop(background)


async def test_a_cached_caller_is_refused_once_its_token_expires_or_the_keys_change(
    runtime: Any, clock: Any
) -> None:
    from datetime import timedelta

    world = await _world(runtime)
    assert await _caller(runtime, world) == world["org"]
    cached = runtime.decision_callers.get(world["token"], world["slug"])
    assert cached is not None
    # The key list it was verified under is read again (5 s): verified afresh, cached anew.
    clock.advance(timedelta(seconds=6))
    assert await _caller(runtime, world) == world["org"]
    again = runtime.decision_callers.get(world["token"], world["slug"])
    assert again is not None and again is not cached
    clock.advance(timedelta(minutes=5))  # past the token's exp
    assert await _caller(runtime, world) == 401
    assert runtime.decision_callers.get(world["token"], world["slug"]) is None


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_on_the_same_node_refuses_its_cached_caller_at_once(
    runtime: Any, change: str
) -> None:
    """Without the catch-up of another process's writes (which drops the organization cache
    on SQLite, and with it every cached caller): each change moves what it touches."""
    world = await _world(runtime)
    assert await _caller(runtime, world) == world["org"]
    assert runtime.decision_callers.get(world["token"], world["slug"]) is not None
    make, refusal = CHANGES[change]
    async with runtime.unit() as unit:
        await make(unit, world)
    assert await _caller(runtime, world) == refusal
