"""Deleting what RBAC hangs on (issue 12, section 4's DELETE operations) over the real SQL
stores: a group, a project with its roles and assignments, a whole organization; each drops
exactly its own rows, and the permissions cached from them."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import func, select

from ostiary.features.orgs.models import Conflict, NotFound
from ostiary.storage.sqla.tables import group_members, role_assignments, role_includes, roles


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def _org_with(runtime: Any, *users: str) -> str:
    async with runtime.unit() as unit:
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        for user in users:
            await unit.orgs.add_member(org.id, user, actor=None)
    return str(org.id)


async def _count(runtime: Any, table: Any, org: str) -> int:
    async with runtime.unit() as unit:
        query = select(func.count()).select_from(table).where(table.c.organization_id == org)
        return int((await unit.conn.execute(query)).scalar_one())


async def test_deleting_a_group_drops_its_grants_from_its_members(runtime: Any) -> None:
    user = await _user(runtime)
    org, other = await _org_with(runtime, user), await _org_with(runtime, user)
    async with runtime.unit() as unit:
        for where in (org, other):
            await unit.rbac.create_group(where, "ops", roles=["admin"], actor=None)
            await unit.rbac.add_group_member(where, "ops", user, actor=None)
        assert "roles:manage" in await unit.rbac.effective_permissions(org, "user", user)
    async with runtime.unit() as unit:
        await unit.rbac.delete_group(org, "ops", actor="actor-1")
    async with runtime.unit() as unit:
        assert await unit.rbac.effective_permissions(org, "user", user) == frozenset()
        assert "roles:manage" in await unit.rbac.effective_permissions(other, "user", user)
        with pytest.raises(NotFound):
            await unit.rbac.get_group(org, "ops")
    assert await _count(runtime, group_members, org) == 0
    assert await _count(runtime, group_members, other) == 1


async def test_deleting_a_project_drops_its_roles_and_assignments_only(runtime: Any) -> None:
    user = await _user(runtime)
    org = await _org_with(runtime, user)
    async with runtime.unit() as unit:
        p1 = await unit.orgs.create_project(org, "One", actor=None)
        p2 = await unit.orgs.create_project(org, "Two", actor=None)
        own = await unit.rbac.create_role(
            org, "p1r", permissions=["audit:read"], project_id=p1.id, actor=None
        )
        await unit.rbac.create_role(org, "p1r2", includes=[own.id], project_id=p1.id, actor=None)
        await unit.rbac.assign(org, ("user", user), "p1r2", project_id=p1.id, actor=None)
        await unit.rbac.assign(org, ("user", user), "reader", project_id=p2.id, actor=None)
        await unit.rbac.assign(org, ("user", user), "member", actor=None)
        assert "audit:read" in await unit.rbac.effective_permissions(org, "user", user, p1.id)
    async with runtime.unit() as unit:
        await unit.orgs.delete_project(org, "one", actor=None)
    async with runtime.unit() as unit:
        assert "audit:read" not in await unit.rbac.effective_permissions(org, "user", user, p1.id)
        held = await unit.rbac.assignments_of(org, ("user", user))
        assert sorted((a.role, a.project_id) for a in held) == sorted(
            [("member", None), ("reader", p2.id)]
        )
    assert await _count(runtime, roles, org) == 0
    assert await _count(runtime, role_includes, org) == 0


async def test_update_and_delete_an_organization(runtime: Any) -> None:
    user = await _user(runtime)
    org, kept = await _org_with(runtime, user), await _org_with(runtime, user)
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("user", user), "owner", actor=None)
        await unit.rbac.create_role(org, "r", includes=["reader"], actor=None)
        taken = (await unit.orgs.get(kept)).slug
    async with runtime.unit() as unit:
        with pytest.raises(Conflict):
            await unit.orgs.update(org, slug=taken, actor=None)
    async with runtime.unit() as unit:
        renamed = await unit.orgs.update(org, name="Renamed", slug="renamed-org", actor=None)
        assert (await unit.orgs.resolve("renamed-org")).name == "Renamed" == renamed.name
        listed, _ = await unit.orgs.list_orgs_of_user(user)
        assert {o.id for o in listed} == {org, kept}
    async with runtime.unit() as unit:
        await unit.orgs.delete(org, actor=user)
    async with runtime.unit() as unit:
        with pytest.raises(NotFound):
            await unit.orgs.get(org)
        listed, _ = await unit.orgs.list_orgs_of_user(user)
        assert [o.id for o in listed] == [kept]
        assert await unit.rbac.effective_permissions(org, "user", user) == frozenset()
    for table in (role_assignments, roles, role_includes):
        assert await _count(runtime, table, org) == 0


async def test_listing_many_members_details_in_bulk(runtime: Any) -> None:
    users = [await _user(runtime) for _ in range(3)]
    org = await _org_with(runtime, *users)
    async with runtime.unit() as unit:
        group = await unit.rbac.create_group(org, "g", actor=None)
        await unit.rbac.add_group_member(org, group.id, users[0], actor=None)
        found = await unit.accounts.get_many([*users, "no-such-user"])
        assert set(found) == set(users)
        groups = await unit.rbac.groups_of_users(org, users)
        assert [g.name for g in groups[users[0]]] == ["g"] and groups[users[1]] == []
        named = await unit.rbac.roles_by_id(org, ["owner", "nope"])
        assert list(named) == ["owner"]


async def test_bulk_lookups_are_scoped_by_organization(runtime: Any) -> None:
    user = await _user(runtime)
    org, other = await _org_with(runtime, user), await _org_with(runtime, user)
    async with runtime.unit() as unit:
        group = await unit.rbac.create_group(org, "g", actor=None)
        await unit.rbac.add_group_member(org, group.id, user, actor=None)
        role = await unit.rbac.create_role(org, "r", actor=None)
        project = await unit.orgs.create_project(org, "p", actor=None)
        await unit.rbac.assign(org, ("user", user), "reader", project_id=project.id, actor=None)
    async with runtime.unit() as unit:
        assert await unit.rbac.groups_of_users(other, [user]) == {user: []}
        assert await unit.rbac.roles_by_id(other, [role.id]) == {}
        # Another organization's project id drops nothing of this one's.
        await unit.rbac.project_deleting(other, project.id, actor=None)
        with pytest.raises(NotFound):
            await unit.orgs.delete_project(other, project.id, actor=None)
        with pytest.raises(NotFound):
            await unit.rbac.delete_group(other, group.id, actor=None)
    async with runtime.unit() as unit:
        assert [a.project_id for a in await unit.rbac.assignments_of(org, ("user", user))] == [
            project.id
        ]
        assert (await unit.rbac.get_group(org, group.id)).name == "g"
