"""The active organization of a user, leaving an organization, and an organization's
required acr (features/orgs/service.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from ostiary.features.orgs.models import InvalidInput, LastOwner, NotAMember, NotFound


async def _user(unit: Any) -> str:
    user = await unit.accounts.create_user(
        f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
    )
    return str(user.id)


async def test_active_org_is_a_chosen_membership_or_the_only_one(runtime: Any) -> None:
    async with runtime.unit() as unit:
        user, other = await _user(unit), await _user(unit)
        a = await unit.orgs.create("Alpha", actor=None)
        b = await unit.orgs.create("Beta", actor=None)
        foreign = await unit.orgs.create("Foreign", actor=None)
        assert await unit.orgs.active_org(user) is None  # no organization
        await unit.orgs.add_member(a.id, user, actor=None)
        assert (await unit.orgs.active_org(user)).id == a.id  # the only one
        await unit.orgs.add_member(b.id, user, actor=None)
        assert await unit.orgs.active_org(user) is None  # two: no choice made for them
        assert [o.name for o in await unit.orgs.orgs_of(user)] == ["Alpha", "Beta"]
        await unit.orgs.set_active_org(user, b.id)
        assert (await unit.orgs.active_org(user)).id == b.id
        with pytest.raises(NotFound):  # not theirs: not told apart from absent
            await unit.orgs.set_active_org(user, foreign.id)
        with pytest.raises(NotFound):
            await unit.orgs.set_active_org(user, "x" * 500)
        assert (await unit.orgs.active_org(user)).id == b.id
        assert await unit.orgs.active_org(other) is None


async def test_leaving_clears_the_choice_and_the_last_owner_stays(runtime: Any) -> None:
    async with runtime.unit() as unit:
        owner, member = await _user(unit), await _user(unit)
        org = await unit.orgs.create("Leavers", actor=None)
        for user, role in ((owner, "owner"), (member, "member")):
            await unit.orgs.add_member(org.id, user, actor=None)
            await unit.rbac.assign(org.id, ("user", user), role, actor=None)
        await unit.orgs.set_active_org(member, org.id)
        await unit.orgs.leave(org.id, member)
        assert not await unit.orgs.is_member(org.id, member)
        assert await unit.orgs.active_org(member) is None
        with pytest.raises(NotAMember):
            await unit.orgs.leave(org.id, member)
    async with runtime.unit() as unit:
        with pytest.raises(LastOwner):
            await unit.orgs.leave(org.id, owner)
    async with runtime.unit() as unit:
        assert await unit.orgs.is_member(org.id, owner)


async def test_require_acr_is_one_of_the_supported_classes(runtime: Any) -> None:
    async with runtime.unit() as unit:
        org = await unit.orgs.create("Strict", actor=None)
        updated = await unit.orgs.update(org.id, require_acr="urn:ostiary:acr:mfa", actor=None)
        assert updated.require_acr == "urn:ostiary:acr:mfa"
        assert (await unit.orgs.get(org.id)).require_acr == "urn:ostiary:acr:mfa"
        for bad in ("", "mfa", "urn:ostiary:acr:MFA", "phr "):
            with pytest.raises(InvalidInput):
                await unit.orgs.update(org.id, require_acr=bad, actor=None)
        renamed = await unit.orgs.update(org.id, name="Stricter", actor=None)
        assert (renamed.name, renamed.require_acr) == ("Stricter", "urn:ostiary:acr:mfa")
        cleared = await unit.orgs.update(org.id, require_acr=None, actor=None)
        assert cleared.require_acr is None


async def test_concurrent_choices_of_the_active_organization_never_fail(runtime: Any) -> None:
    import asyncio

    async with runtime.unit() as unit:
        user = await _user(unit)
        orgs = [(await unit.orgs.create(f"Choice {n}", actor=None)).id for n in range(3)]
        for org in orgs:
            await unit.orgs.add_member(org, user, actor=None)

    async def choose(org: str) -> None:
        async with runtime.unit() as unit:
            await unit.orgs.set_active_org(user, org)

    await asyncio.wait_for(asyncio.gather(*(choose(o) for o in orgs * 2)), timeout=30)
    async with runtime.unit() as unit:
        assert (await unit.orgs.active_org(user)).id in orgs
