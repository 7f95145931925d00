"""features/orgs/service.py over the real SQL stores (SQLite; PostgreSQL + Redis when
configured): organizations and slugs, projects, members, paging, tenancy and auditing."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

from ostiary.features.orgs.models import (
    Conflict,
    InvalidInput,
    LastOwner,
    NotAMember,
    NotFound,
    Organization,
)
from ostiary.storage.sqla.tables import audit_events, group_members, role_assignments


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def _org(runtime: Any, name: str = "Acme Inc", **kw: Any) -> Organization:
    async with runtime.unit() as unit:
        org: Organization = await unit.orgs.create(name, actor=None, **kw)
    return org


async def test_create_derives_a_unique_slug_and_resolves_by_id_or_slug(runtime: Any) -> None:
    first = await _org(runtime)
    second = await _org(runtime)
    third = await _org(runtime, slug="acme")
    assert (first.slug, second.slug, third.slug) == ("acme-inc", "acme-inc-2", "acme")
    async with runtime.unit() as unit:
        assert await unit.orgs.resolve(first.id) == first
        assert await unit.orgs.resolve("acme-inc-2") == second
        with pytest.raises(NotFound) as missing:
            await unit.orgs.resolve("nope")
        assert missing.value.code == "not_found"


async def test_a_given_slug_must_be_valid_and_free(runtime: Any) -> None:
    await _org(runtime, slug="taken")
    async with runtime.unit() as unit:
        with pytest.raises(Conflict) as clash:
            await unit.orgs.create("Other", slug="taken", actor=None)
        assert clash.value.code == "conflict"
        for bad in ("-x", "X", "a", "a" * 64, "a_b"):
            with pytest.raises(InvalidInput):
                await unit.orgs.create("Other", slug=bad, actor=None)
        for name in ("", "   ", "x" * 201, "bad\x00name"):
            with pytest.raises(InvalidInput):
                await unit.orgs.create(name, actor=None)


async def test_listing_pages_by_opaque_cursor(runtime: Any, clock: Any) -> None:
    from datetime import timedelta

    made = []
    for n in range(5):
        made.append((await _org(runtime, f"Org {n}")).id)
        clock.advance(timedelta(seconds=1 if n % 2 else 0))  # ties on created_at too
    seen: list[str] = []
    cursor = None
    async with runtime.unit() as unit:
        for _ in range(10):
            page, cursor = await unit.orgs.list_orgs(limit=2, cursor=cursor)
            seen.extend(o.id for o in page)
            if cursor is None:
                break
        with pytest.raises(InvalidInput):
            await unit.orgs.list_orgs(cursor="not-a-cursor")
        with pytest.raises(InvalidInput):
            await unit.orgs.list_orgs(limit=0)
    assert sorted(seen) == sorted(made) and len(seen) == 5


async def test_projects_are_scoped_by_organization(runtime: Any) -> None:
    acme, other = await _org(runtime), await _org(runtime, "Other")
    async with runtime.unit() as unit:
        project = await unit.orgs.create_project(acme.id, "Chat Bot", actor=None)
        assert project.slug == "chat-bot"
        twin = await unit.orgs.create_project(other.id, "Chat Bot", actor=None)
        with pytest.raises(Conflict):
            await unit.orgs.create_project(acme.id, "Chat-Bot", actor=None)
        assert await unit.orgs.get_project(acme.id, "chat-bot") == project
        assert await unit.orgs.get_project(acme.id, project.id) == project
        with pytest.raises(NotFound):
            await unit.orgs.get_project(acme.id, twin.id)  # another organization's, by id
        page, cursor = await unit.orgs.list_projects(acme.id)
        assert page == [project] and cursor is None


async def test_members_add_list_remove_with_audit(runtime: Any) -> None:
    org = await _org(runtime)
    owner, member = await _user(runtime), await _user(runtime)
    async with runtime.unit() as unit:
        await unit.orgs.add_member(org.id, owner, actor=None)
        await unit.rbac.assign(org.id, ("user", owner), "owner", actor=None)
        await unit.orgs.add_member(org.id, member, actor=owner)
        with pytest.raises(Conflict):
            await unit.orgs.add_member(org.id, member, actor=None)
        with pytest.raises(NotFound):
            await unit.orgs.add_member(org.id, "no-such-user", actor=None)
        page, _ = await unit.orgs.list_members(org.id)
        assert {m.user_id for m in page} == {owner, member}
    async with runtime.unit() as unit:
        await unit.orgs.remove_member(org.id, member, actor=owner)
        assert not await unit.orgs.is_member(org.id, member)
        with pytest.raises(NotAMember) as gone:
            await unit.orgs.remove_member(org.id, member, actor=owner)
        assert gone.value.code == "not_a_member"
        rows = (
            await unit.conn.execute(
                select(audit_events).where(audit_events.c.action == "org.member.remove")
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].actor == owner and rows[0].target == member
    assert rows[0].details["organization_id"] == org.id


async def test_the_last_owner_cannot_leave_and_nothing_changes(runtime: Any) -> None:
    org = await _org(runtime)
    owner = await _user(runtime)
    async with runtime.unit() as unit:
        await unit.orgs.add_member(org.id, owner, actor=None)
        await unit.rbac.assign(org.id, ("user", owner), "owner", actor=None)
    with pytest.raises(LastOwner) as refused:
        async with runtime.unit() as unit:
            await unit.orgs.remove_member(org.id, owner, actor=None)
    assert refused.value.code == "last_owner"
    async with runtime.unit() as unit:
        assert await unit.orgs.is_member(org.id, owner)
        assert "*" in await unit.rbac.effective_permissions(org.id, "user", owner)


async def test_removing_a_member_drops_their_groups_and_assignments_in_that_org_only(
    runtime: Any,
) -> None:
    acme, other = await _org(runtime), await _org(runtime, "Other")
    user = await _user(runtime)
    async with runtime.unit() as unit:
        for org in (acme, other):
            await unit.orgs.add_member(org.id, user, actor=None)
            await unit.rbac.assign(org.id, ("user", user), "admin", actor=None)
            group = await unit.rbac.create_group(org.id, "eng", roles=["reader"], actor=None)
            await unit.rbac.add_group_member(org.id, group.id, user, actor=None)
    async with runtime.unit() as unit:
        await unit.orgs.remove_member(acme.id, user, actor=None)
        assert await unit.rbac.effective_permissions(acme.id, "user", user) == frozenset()
        assert "members:manage" in await unit.rbac.effective_permissions(other.id, "user", user)
        left = (
            await unit.conn.execute(
                select(role_assignments.c.organization_id).where(
                    role_assignments.c.principal_id == user
                )
            )
        ).all()
        groups_left = (
            await unit.conn.execute(
                select(group_members.c.organization_id).where(group_members.c.user_id == user)
            )
        ).all()
    assert {r[0] for r in left} == {other.id}
    assert {r[0] for r in groups_left} == {other.id}


async def test_another_organizations_ids_are_not_found_everywhere(runtime: Any) -> None:
    """Tenancy: every lookup by id scoped by the organization answers not_found for another
    organization's object (never telling it apart from an absent one)."""
    acme, other = await _org(runtime), await _org(runtime, "Other")
    user = await _user(runtime)
    async with runtime.unit() as unit:
        await unit.orgs.add_member(other.id, user, actor=None)
        project = await unit.orgs.create_project(other.id, "P", slug="pp", actor=None)
        role = await unit.rbac.create_role(other.id, "custom", actor=None)
        group = await unit.rbac.create_group(other.id, "g", actor=None)
        rbac = unit.rbac
        attempts = [
            unit.orgs.get_project(acme.id, project.id),
            unit.orgs.get_project(acme.id, "pp"),
            rbac.get_role(acme.id, role.id),
            rbac.update_role(acme.id, role.id, permissions=["*"], actor=None),
            rbac.delete_role(acme.id, role.id, actor=None),
            rbac.get_group(acme.id, group.id),
            rbac.group_members(acme.id, group.id),
            rbac.assign(acme.id, ("group", group.id), "reader", actor=None),
            rbac.create_role(acme.id, "x", includes=[role.id], actor=None),
            rbac.create_role(acme.id, "y", project_id=project.id, actor=None),
            rbac.create_group(acme.id, "h", roles=[role.id], actor=None),
            rbac.add_group_member(acme.id, group.id, user, actor=None),
            rbac.remove_group_member(acme.id, group.id, user, actor=None),
            rbac.unassign(acme.id, ("group", group.id), role.id, actor=None),
            rbac.set_roles(acme.id, ("group", group.id), [], actor=None),
            unit.orgs.create_project(other.id + "x", "P", actor=None),
            unit.orgs.list_members("no-such-org"),
        ]
        for attempt in attempts:
            with pytest.raises(NotFound):
                await attempt
        with pytest.raises(NotAMember):  # a member elsewhere is a stranger here
            await rbac.assign(acme.id, ("user", user), "reader", actor=None)
