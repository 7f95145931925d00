"""Decisions cached on one node (compiled policies, subjects, catalog attributes) follow a
change made on another (issue 13, section 2), through the revocation fan-out: Redis pub/sub,
or the poll of the ``revocations`` table (and SQLite's catch-up). Two runtimes on one database
stand for two replicas, as in test_permission_nodes.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ostiary.features.policy.service import DecisionEnv
from ostiary.protocol.authzen import Action, Entity, Evaluation
from ostiary.web.runtime import Runtime
from tests.conftest import Backend
from tests.web.nodes import PATHS, hear, node_settings, two_nodes
from tests.web.test_revocation_nodes import _stop, _until

Change = Callable[[Any, str, str], Awaitable[Any]]


async def _policy(unit: Any, org: str, user: str) -> None:
    await unit.policies.set(org, 'forbid(principal, action, resource == model::"m1");', actor=None)


async def _deployment_policy(unit: Any, org: str, user: str) -> None:
    await unit.policies.set(None, 'forbid(principal, action, resource == model::"m1");', actor=None)


async def _catalog(unit: Any, org: str, user: str) -> None:
    await unit.models.update(org, "m1", {"tier": "blocked"}, actor=None)


async def _role(unit: Any, org: str, user: str) -> None:
    await unit.rbac.unassign(org, ("user", user), "member", actor=None)


CHANGES: dict[str, Change] = {
    "policy": _policy,
    "deployment_policy": _deployment_policy,
    "catalog": _catalog,
    "role": _role,
}


async def _allowed(rt: Runtime, org: str, user: str) -> bool:
    ask = Evaluation(Entity("user", user), Action("models:invoke"), Entity("model", "m1"))
    async with rt.unit() as unit:
        decision = await unit.policies.evaluate(org, ask, DecisionEnv(rt.clock.now()))
    return decision.allowed


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_on_node_a_reaches_decisions_on_node_b(
    backend: Backend, tmp_path: Path, change: str, path: str
) -> None:
    settings = node_settings(backend, tmp_path, path)
    background: asyncio.Task[None] | None = None
    async with two_nodes(settings) as (node_a, node_b):
        async with node_a.unit() as unit:
            user = (
                await unit.accounts.create_user(
                    f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
                )
            ).id
            org = (await unit.orgs.create("Two nodes", actor=None)).id
            await unit.orgs.add_member(org, user, actor=None)
            await unit.rbac.assign(org, ("user", user), "member", actor=None)
            await unit.models.create(org, "m1", {"tier": "open"}, actor=None)
            await unit.policies.set(
                org,
                "forbid(principal, action, resource is model)\n"
                ' when { resource has tier && resource.tier == "blocked" };',
                actor=None,
            )
        background = await hear(path, node_a, node_b)
        try:
            assert await _allowed(node_b, org, user)  # cached on node B
            async with node_a.unit() as unit:
                await CHANGES[change](unit, org, user)
            assert not await _allowed(node_a, org, user)
            if path == "poll":
                assert await _allowed(node_b, org, user)  # still its cache: nothing told it
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def arrived() -> bool:
                return not await _allowed(node_b, org, user)

            await _until(arrived)
        finally:
            await _stop(background)
