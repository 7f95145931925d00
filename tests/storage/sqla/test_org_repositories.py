"""storage/sqla/org_repositories.py on SQLite and PostgreSQL: every method on org-owned rows is
scoped by the organization id, keyset paging over (created_at, id) with ties, the organization
level stored as "" and read back as None, and role deletion cleaning up after itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ostiary.features.orgs.models import Membership, Organization, Project
from ostiary.features.rbac.models import Assignment, Group, Role
from ostiary.storage.sqla.org_repositories import SqlOrgStore, SqlRbacStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _org(slug: str, at: datetime = T0) -> Organization:
    return Organization(str(uuid.uuid4()), slug, slug.title(), at, at)


def _role(org: str, name: str, includes: tuple[str, ...] = (), project: str | None = None) -> Role:
    return Role(
        str(uuid.uuid4()), org, name, frozenset({"keys:read"}), includes, T0, T0, project_id=project
    )


async def test_keyset_paging_with_ties_and_slug_uniqueness(runtime: Any) -> None:
    async with runtime.unit() as unit:
        store = SqlOrgStore(unit.conn)
        made = [_org(f"org-{n}", T0 + timedelta(seconds=n // 2)) for n in range(5)]
        for org in made:
            assert await store.add_org(org)
        assert not await store.add_org(_org("org-0"))
        seen: list[str] = []
        after = None
        for _ in range(5):
            page = await store.list_orgs(2, after)
            if not page:
                break
            seen.extend(o.id for o in page)
            after = (page[-1].created_at, page[-1].id)
    expected = sorted(made, key=lambda o: (o.created_at, o.id))
    assert seen == [o.id for o in expected]


async def test_every_lookup_is_scoped_by_the_organization(runtime: Any) -> None:
    async with runtime.unit() as unit:
        orgs, rbac = SqlOrgStore(unit.conn), SqlRbacStore(unit.conn)
        mine, theirs = _org("mine"), _org("theirs")
        for org in (mine, theirs):
            await orgs.add_org(org)
        user = await unit.accounts.create_user("scoped@example.com", "correct horse battery")
        project = Project(str(uuid.uuid4()), theirs.id, "proj", "Proj", T0)
        assert await orgs.add_project(project)
        assert await orgs.add_membership(Membership(theirs.id, user.id, T0)) == "added"
        assert await orgs.add_membership(Membership(theirs.id, user.id, T0)) == "exists"
        assert await orgs.add_membership(Membership(theirs.id, "ghost", T0)) == "no_user"
        role = _role(theirs.id, "r")
        assert await rbac.add_role(role)
        group = Group(str(uuid.uuid4()), theirs.id, "g", T0)
        assert await rbac.add_group(group)
        assert await rbac.add_group_member(theirs.id, group.id, user.id)
        principal = ("user", user.id)
        assert await rbac.add_assignment(Assignment(theirs.id, "user", user.id, role.id, None, T0))

        assert await orgs.get_project(mine.id, project.id) is None
        assert await orgs.get_project_by_slug(mine.id, "proj") is None
        assert await orgs.get_membership(mine.id, user.id) is None
        assert not await orgs.remove_membership(mine.id, user.id)
        assert await orgs.list_projects(mine.id, 10, None) == []
        assert await orgs.list_memberships(mine.id, 10, None) == []
        assert await rbac.get_role(mine.id, role.id) is None
        assert await rbac.get_role_by_name(mine.id, None, "r") is None
        assert not await rbac.delete_role(mine.id, role.id)
        assert await rbac.list_roles(mine.id, 10, None) == []
        assert await rbac.role_graph(mine.id) == ({}, {})
        assert await rbac.assignments_of(mine.id, [principal]) == []
        assert await rbac.holders(mine.id, [role.id]) == []
        assert not await rbac.remove_assignment(mine.id, principal, role.id, None)
        assert await rbac.remove_assignments_of(mine.id, principal) == 0
        assert await rbac.get_group(mine.id, group.id) is None
        assert await rbac.get_group_by_name(mine.id, "g") is None
        assert await rbac.list_groups(mine.id, 10, None) == []
        assert await rbac.group_members(mine.id, group.id) == []
        assert await rbac.groups_of_user(mine.id, user.id) == []
        assert not await rbac.remove_group_member(mine.id, group.id, user.id)
        assert await rbac.remove_user_from_groups(mine.id, user.id) == 0
        # ...and everything is still there for its own organization.
        assert await rbac.get_role(theirs.id, role.id) == role
        assert await rbac.group_members(theirs.id, group.id) == [user.id]
        assert await rbac.holders(theirs.id, [role.id]) == [principal]


async def test_levels_includes_and_role_deletion(runtime: Any) -> None:
    async with runtime.unit() as unit:
        orgs, rbac = SqlOrgStore(unit.conn), SqlRbacStore(unit.conn)
        org = _org("levels")
        await orgs.add_org(org)
        project = Project(str(uuid.uuid4()), org.id, "p", "P", T0)
        await orgs.add_project(project)
        base = _role(org.id, "base")
        scoped = _role(org.id, "base", includes=(base.id, "reader"), project=project.id)
        assert await rbac.add_role(base)
        assert await rbac.add_role(scoped)  # the same name at another level
        assert not await rbac.add_role(_role(org.id, "base"))  # not twice at one level
        found = await rbac.get_role_by_name(org.id, project.id, "base")
        assert found is not None and found.project_id == project.id
        assert found.includes == tuple(sorted((base.id, "reader")))
        assert (await rbac.get_role(org.id, base.id)) == base
        await rbac.add_assignment(Assignment(org.id, "group", "g1", base.id, None, T0))
        await rbac.add_assignment(Assignment(org.id, "group", "g1", base.id, project.id, T0))
        held = await rbac.assignments_of(org.id, [("group", "g1")])
        assert sorted(a.project_id or "" for a in held) == ["", project.id]
        assert await rbac.delete_role(org.id, base.id)
        own, includes = await rbac.role_graph(org.id)
        assert set(own) == {scoped.id} and includes == {scoped.id: ("reader",)}
        assert await rbac.assignments_of(org.id, [("group", "g1")]) == []
