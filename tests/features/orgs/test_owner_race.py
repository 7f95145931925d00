"""An organization always keeps an owner, concurrently too (issue 12, section 1): two
requests each removing or demoting one of the last two owners, in overlapping transactions,
must not both succeed. On PostgreSQL the organization's row lock (``FOR UPDATE``) orders them
and the second sees the first's commit; SQLite's writers take turns (``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ostiary.features.orgs.models import LastOwner

Removal = Callable[[Any, str, str], Awaitable[Any]]


async def _leave(unit: Any, org: str, user: str) -> None:
    await unit.orgs.remove_member(org, user, actor=None)


async def _demote(unit: Any, org: str, user: str) -> None:
    await unit.rbac.set_roles(org, ("user", user), ["member"], actor=None)


async def _unassign(unit: Any, org: str, user: str) -> None:
    await unit.rbac.unassign(org, ("user", user), "owner", actor=None)


@pytest.mark.parametrize("removal", [_leave, _demote, _unassign], ids=lambda f: f.__name__)
async def test_two_concurrent_removals_of_the_last_two_owners_leave_one(
    runtime: Any, removal: Removal
) -> None:
    if runtime.settings.db.url.startswith("sqlite"):
        pytest.skip("SQLite writers take turns; the race needs concurrent transactions")
    owners = []
    async with runtime.unit() as unit:
        org = (await unit.orgs.create("Race", actor=None)).id
        for _ in range(2):
            user = await unit.accounts.create_user(
                f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
            )
            await unit.orgs.add_member(org, user.id, actor=None)
            await unit.rbac.assign(org, ("user", user.id), "owner", actor=None)
            owners.append(user.id)
    started = asyncio.Barrier(2)

    async def remove(user: str) -> None:
        async with runtime.unit() as unit:
            # Both transactions are open, and have read the organization, before either
            # removes anything.
            await unit.orgs.get(org)
            await unit.rbac.assignments_of(org, ("user", user))
            await started.wait()
            await removal(unit, org, user)

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(remove(u) for u in owners), return_exceptions=True), timeout=30
    )
    refused = [o for o in outcomes if isinstance(o, LastOwner)]
    assert len(refused) == 1 and outcomes.count(None) == 1, outcomes
    async with runtime.unit() as unit:
        held = [await unit.rbac.effective_permissions(org, "user", u) for u in owners]
    assert sorted("*" in h for h in held) == [False, True]
