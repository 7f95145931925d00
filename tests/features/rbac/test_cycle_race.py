"""Two concurrent include edits, each adding one half of a cycle (a -> b, b -> a), in
overlapping transactions on PostgreSQL: one is refused, so no cycle is ever stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ostiary.features.rbac.models import RoleCycle
from ostiary.protocol.permissions import find_cycle
from ostiary.storage.sqla.org_repositories import SqlRbacStore


async def test_concurrent_halves_of_a_cycle_cannot_both_be_saved(runtime: Any) -> None:
    if runtime.settings.db.url.startswith("sqlite"):
        pytest.skip("SQLite writers take turns; the race needs concurrent transactions")
    async with runtime.unit() as unit:
        org = (await unit.orgs.create("Cycle race", actor=None)).id
        await unit.rbac.create_role(org, "a", actor=None)
        await unit.rbac.create_role(org, "b", actor=None)
    started = asyncio.Barrier(2)

    async def include(role: str, other: str) -> None:
        async with runtime.unit() as unit:
            await unit.rbac.get_role(org, role)  # both transactions open first
            await started.wait()
            await unit.rbac.update_role(org, role, includes=[other], actor=None)

    outcomes = await asyncio.wait_for(
        asyncio.gather(include("a", "b"), include("b", "a"), return_exceptions=True), timeout=30
    )
    assert sum(isinstance(o, RoleCycle) for o in outcomes) == 1, outcomes
    async with runtime.unit() as unit:
        _own, edges = await SqlRbacStore(unit.conn).role_graph(org)
    assert find_cycle(edges) is None
