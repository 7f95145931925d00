"""SQL adapters of the organizations and RBAC ports (features/orgs/ports.py,
features/rbac/ports.py). Every statement on an org-owned table is scoped by
``organization_id`` (ARCHITECTURE.md, "Tenancy model"), so an id of another organization finds
nothing. Inserts that may clash run in a savepoint: on PostgreSQL a failed statement would
otherwise abort the unit's transaction. ``project_id`` is stored as "" for the organization
level (unique constraints treat NULLs as distinct on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from ostiary.features.orgs.models import Cursor, Membership, Organization, Project
from ostiary.features.rbac.models import Assignment, Group, Principal, Role
from ostiary.features.rbac.ports import RoleGraph
from ostiary.storage.sqla.tables import (
    group_members,
    groups,
    memberships,
    org_preferences,
    organizations,
    projects,
    role_assignments,
    role_includes,
    roles,
    users,
)
from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlOrgStore", "SqlRbacStore"]


def _after(table: Any, after: Cursor | None, key: str = "id") -> ColumnElement[bool]:
    if after is None:
        return and_(True)
    created_at, item_id = after
    column = table.c[key]
    return or_(
        table.c.created_at > created_at,
        and_(table.c.created_at == created_at, column > item_id),
    )


async def _insert(conn: Connection, statement: Any) -> bool:
    try:
        async with conn.begin_nested():
            await conn.execute(statement)
    except IntegrityError:
        return False
    return True


def _rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in result]


def _level(project_id: str | None) -> str:
    return project_id or ""


class SqlOrgStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add_org(self, org: Organization) -> bool:
        values = {
            "id": org.id,
            "slug": org.slug,
            "name": org.name,
            "created_at": org.created_at,
            "updated_at": org.updated_at,
            "require_acr": org.require_acr,
            "plan": org.plan,
        }
        return await _insert(self._conn, insert(organizations).values(**values))

    async def _org(self, condition: ColumnElement[bool]) -> Organization | None:
        row = (await self._conn.execute(select(organizations).where(condition))).first()
        return Organization(**row._mapping) if row else None

    async def get_org(self, org_id: str) -> Organization | None:
        return await self._org(organizations.c.id == org_id)

    async def orgs_of_user(self, user_id: str) -> list[Organization]:
        query = (
            select(organizations)
            .join(memberships, memberships.c.organization_id == organizations.c.id)
            .where(memberships.c.user_id == user_id)
            .order_by(organizations.c.name, organizations.c.id)
        )
        return [Organization(**row._mapping) for row in await self._conn.execute(query)]

    async def get_active_org(self, user_id: str) -> str | None:
        query = select(org_preferences.c.organization_id).where(
            org_preferences.c.user_id == user_id
        )
        row = (await self._conn.execute(query)).first()
        return str(row[0]) if row else None

    async def set_active_org(self, user_id: str, org_id: str | None, now: datetime) -> None:
        mine = org_preferences.c.user_id == user_id
        if org_id is None:
            await self._conn.execute(delete(org_preferences).where(mine))
            return
        change = update(org_preferences).where(mine).values(organization_id=org_id, updated_at=now)
        if (await self._conn.execute(change)).rowcount:
            return
        row = {"user_id": user_id, "organization_id": org_id, "updated_at": now}
        if not await _insert(self._conn, insert(org_preferences).values(**row)):
            await self._conn.execute(change)  # a concurrent choice inserted first: ours wins

    async def get_org_by_slug(self, slug: str) -> Organization | None:
        return await self._org(organizations.c.slug == slug)

    async def list_orgs(self, limit: int, after: Cursor | None) -> list[Organization]:
        query = (
            select(organizations)
            .where(_after(organizations, after))
            .order_by(organizations.c.created_at, organizations.c.id)
            .limit(limit)
        )
        return [Organization(**row._mapping) for row in await self._conn.execute(query)]

    async def list_orgs_of_user(
        self, user_id: str, limit: int, after: Cursor | None
    ) -> list[Organization]:
        query = (
            select(organizations)
            .join(memberships, memberships.c.organization_id == organizations.c.id)
            .where(memberships.c.user_id == user_id, _after(organizations, after))
            .order_by(organizations.c.created_at, organizations.c.id)
            .limit(limit)
        )
        return [Organization(**row._mapping) for row in await self._conn.execute(query)]

    async def update_org(self, org: Organization) -> bool:
        statement = (
            update(organizations)
            .where(organizations.c.id == org.id)
            .values(
                slug=org.slug,
                name=org.name,
                require_acr=org.require_acr,
                plan=org.plan,
                updated_at=org.updated_at,
            )
        )
        return await _insert(self._conn, statement)

    async def delete_org(self, org_id: str) -> bool:
        result = await self._conn.execute(delete(organizations).where(organizations.c.id == org_id))
        return bool(result.rowcount)

    async def lock_org(self, org_id: str) -> bool:
        query = select(organizations.c.id).where(organizations.c.id == org_id)
        if self._conn.dialect.name != "sqlite":
            query = query.with_for_update()
        return (await self._conn.execute(query)).first() is not None

    async def add_project(self, project: Project) -> bool:
        values = {
            "id": project.id,
            "organization_id": project.organization_id,
            "slug": project.slug,
            "name": project.name,
            "created_at": project.created_at,
        }
        return await _insert(self._conn, insert(projects).values(**values))

    async def _project(self, *conditions: ColumnElement[bool]) -> Project | None:
        row = (await self._conn.execute(select(projects).where(*conditions))).first()
        return Project(**row._mapping) if row else None

    async def get_project(self, org_id: str, project_id: str) -> Project | None:
        return await self._project(
            projects.c.organization_id == org_id, projects.c.id == project_id
        )

    async def get_project_by_slug(self, org_id: str, slug: str) -> Project | None:
        return await self._project(projects.c.organization_id == org_id, projects.c.slug == slug)

    async def list_projects(self, org_id: str, limit: int, after: Cursor | None) -> list[Project]:
        query = (
            select(projects)
            .where(projects.c.organization_id == org_id, _after(projects, after))
            .order_by(projects.c.created_at, projects.c.id)
            .limit(limit)
        )
        return [Project(**row._mapping) for row in await self._conn.execute(query)]

    async def update_project(self, project: Project) -> bool:
        statement = (
            update(projects)
            .where(
                projects.c.organization_id == project.organization_id,
                projects.c.id == project.id,
            )
            .values(slug=project.slug, name=project.name)
        )
        return await _insert(self._conn, statement)

    async def delete_project(self, org_id: str, project_id: str) -> bool:
        result = await self._conn.execute(
            delete(projects).where(
                projects.c.organization_id == org_id, projects.c.id == project_id
            )
        )
        return bool(result.rowcount)

    async def add_membership(self, membership: Membership) -> Literal["added", "exists", "no_user"]:
        exists = select(users.c.id).where(users.c.id == membership.user_id)
        if (await self._conn.execute(exists)).first() is None:
            return "no_user"
        values = {
            "organization_id": membership.organization_id,
            "user_id": membership.user_id,
            "created_at": membership.created_at,
        }
        added = await _insert(self._conn, insert(memberships).values(**values))
        return "added" if added else "exists"

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None:
        query = select(memberships).where(
            memberships.c.organization_id == org_id, memberships.c.user_id == user_id
        )
        row = (await self._conn.execute(query)).first()
        return Membership(**row._mapping) if row else None

    async def remove_membership(self, org_id: str, user_id: str) -> bool:
        result = await self._conn.execute(
            delete(memberships).where(
                memberships.c.organization_id == org_id, memberships.c.user_id == user_id
            )
        )
        return bool(result.rowcount)

    async def list_memberships(
        self, org_id: str, limit: int, after: Cursor | None
    ) -> list[Membership]:
        query = (
            select(memberships)
            .where(memberships.c.organization_id == org_id, _after(memberships, after, "user_id"))
            .order_by(memberships.c.created_at, memberships.c.user_id)
            .limit(limit)
        )
        return [Membership(**row._mapping) for row in await self._conn.execute(query)]


class SqlRbacStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- roles -----------------------------------------------------------------------------

    async def _includes_of(self, org_id: str, role_ids: list[str]) -> dict[str, tuple[str, ...]]:
        if not role_ids:
            return {}
        query = (
            select(role_includes.c.role_id, role_includes.c.included)
            .where(role_includes.c.organization_id == org_id, role_includes.c.role_id.in_(role_ids))
            .order_by(role_includes.c.included)
        )
        found: dict[str, list[str]] = {}
        for row in _rows(await self._conn.execute(query)):
            found.setdefault(row[0], []).append(row[1])
        return {role_id: tuple(found.get(role_id, ())) for role_id in role_ids}

    async def _roles(
        self, *conditions: ColumnElement[bool], limit: int | None = None
    ) -> list[Role]:
        query = select(roles).where(*conditions).order_by(roles.c.created_at, roles.c.id)
        if limit is not None:
            query = query.limit(limit)
        rows = list(await self._conn.execute(query))
        if not rows:
            return []
        includes = await self._includes_of(rows[0].organization_id, [r.id for r in rows])
        return [
            Role(
                id=r.id,
                organization_id=r.organization_id,
                name=r.name,
                permissions=frozenset(r.permissions),
                includes=includes.get(r.id, ()),
                created_at=r.created_at,
                updated_at=r.updated_at,
                project_id=r.project_id or None,
                description=r.description,
            )
            for r in rows
        ]

    async def _write_includes(self, role: Role) -> None:
        await self._conn.execute(
            delete(role_includes).where(
                role_includes.c.organization_id == role.organization_id,
                role_includes.c.role_id == role.id,
            )
        )
        if role.includes:
            await self._conn.execute(
                insert(role_includes),
                [
                    {"organization_id": role.organization_id, "role_id": role.id, "included": i}
                    for i in role.includes
                ],
            )

    def _role_values(self, role: Role) -> dict[str, Any]:
        return {
            "name": role.name,
            "description": role.description,
            "permissions": sorted(role.permissions),
            "updated_at": role.updated_at,
        }

    async def add_role(self, role: Role) -> bool:
        values = {
            **self._role_values(role),
            "id": role.id,
            "organization_id": role.organization_id,
            "project_id": _level(role.project_id),
            "created_at": role.created_at,
        }
        if not await _insert(self._conn, insert(roles).values(**values)):
            return False
        await self._write_includes(role)
        return True

    async def update_role(self, role: Role) -> bool:
        statement = (
            update(roles)
            .where(roles.c.organization_id == role.organization_id, roles.c.id == role.id)
            .values(**self._role_values(role))
        )
        if not await _insert(self._conn, statement):
            return False
        await self._write_includes(role)
        return True

    async def delete_role(self, org_id: str, role_id: str) -> bool:
        conn = self._conn
        await conn.execute(
            delete(role_includes).where(
                role_includes.c.organization_id == org_id,
                or_(role_includes.c.role_id == role_id, role_includes.c.included == role_id),
            )
        )
        await conn.execute(
            delete(role_assignments).where(
                role_assignments.c.organization_id == org_id, role_assignments.c.role == role_id
            )
        )
        result = await conn.execute(
            delete(roles).where(roles.c.organization_id == org_id, roles.c.id == role_id)
        )
        return bool(result.rowcount)

    async def get_role(self, org_id: str, role_id: str) -> Role | None:
        found = await self._roles(roles.c.organization_id == org_id, roles.c.id == role_id)
        return found[0] if found else None

    async def get_role_by_name(self, org_id: str, project_id: str | None, name: str) -> Role | None:
        found = await self._roles(
            roles.c.organization_id == org_id,
            roles.c.project_id == _level(project_id),
            roles.c.name == name,
        )
        return found[0] if found else None

    async def list_roles(self, org_id: str, limit: int, after: Cursor | None) -> list[Role]:
        return await self._roles(
            roles.c.organization_id == org_id, _after(roles, after), limit=limit
        )

    async def get_roles(self, org_id: str, role_ids: Collection[str]) -> list[Role]:
        if not role_ids:
            return []
        return await self._roles(roles.c.organization_id == org_id, roles.c.id.in_(list(role_ids)))

    async def drop_project(self, org_id: str, project_id: str) -> list[Principal]:
        conn = self._conn
        ra = role_assignments.c
        own = [
            row[0]
            for row in await conn.execute(
                select(roles.c.id).where(
                    roles.c.organization_id == org_id, roles.c.project_id == project_id
                )
            )
        ]
        touched = or_(ra.project_id == project_id, ra.role.in_(own))
        held = select(ra.principal_type, ra.principal_id).where(
            ra.organization_id == org_id, touched
        )
        affected = [(r.principal_type, r.principal_id) for r in await conn.execute(held.distinct())]
        await conn.execute(delete(role_assignments).where(ra.organization_id == org_id, touched))
        if own:
            await conn.execute(
                delete(role_includes).where(
                    role_includes.c.organization_id == org_id,
                    or_(role_includes.c.role_id.in_(own), role_includes.c.included.in_(own)),
                )
            )
            await conn.execute(
                delete(roles).where(roles.c.organization_id == org_id, roles.c.id.in_(own))
            )
        return affected

    async def role_graph(self, org_id: str) -> RoleGraph:
        own: dict[str, frozenset[str]] = {}
        query = select(roles.c.id, roles.c.permissions).where(roles.c.organization_id == org_id)
        for row in _rows(await self._conn.execute(query)):
            own[row[0]] = frozenset(row[1])
        edges: dict[str, list[str]] = {}
        query2 = select(role_includes.c.role_id, role_includes.c.included).where(
            role_includes.c.organization_id == org_id
        )
        for row in _rows(await self._conn.execute(query2)):
            edges.setdefault(row[0], []).append(row[1])
        includes: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in edges.items()}
        return own, includes

    # -- assignments -----------------------------------------------------------------------

    async def add_assignment(self, assignment: Assignment) -> bool:
        values = {
            "organization_id": assignment.organization_id,
            "principal_type": assignment.principal_type,
            "principal_id": assignment.principal_id,
            "role": assignment.role,
            "project_id": _level(assignment.project_id),
            "created_at": assignment.created_at,
        }
        return await _insert(self._conn, insert(role_assignments).values(**values))

    async def remove_assignment(
        self, org_id: str, principal: Principal, role: str, project_id: str | None
    ) -> bool:
        ra = role_assignments.c
        result = await self._conn.execute(
            delete(role_assignments).where(
                ra.organization_id == org_id,
                ra.principal_type == principal[0],
                ra.principal_id == principal[1],
                ra.role == role,
                ra.project_id == _level(project_id),
            )
        )
        return bool(result.rowcount)

    async def assignments_of(
        self, org_id: str, principals: Collection[Principal]
    ) -> list[Assignment]:
        if not principals:
            return []
        ra = role_assignments.c
        query = (
            select(role_assignments)
            .where(
                ra.organization_id == org_id,
                tuple_(ra.principal_type, ra.principal_id).in_(list(principals)),
            )
            .order_by(ra.created_at, ra.role)
        )
        return [
            Assignment(
                organization_id=r.organization_id,
                principal_type=r.principal_type,
                principal_id=r.principal_id,
                role=r.role,
                project_id=r.project_id or None,
                created_at=r.created_at,
            )
            for r in await self._conn.execute(query)
        ]

    async def remove_assignments_of(self, org_id: str, principal: Principal) -> int:
        ra = role_assignments.c
        result = await self._conn.execute(
            delete(role_assignments).where(
                ra.organization_id == org_id,
                ra.principal_type == principal[0],
                ra.principal_id == principal[1],
            )
        )
        return int(result.rowcount)

    async def holders(self, org_id: str, roles_: Collection[str]) -> list[Principal]:
        if not roles_:
            return []
        ra = role_assignments.c
        query = (
            select(ra.principal_type, ra.principal_id)
            .where(ra.organization_id == org_id, ra.role.in_(list(roles_)))
            .distinct()
        )
        return [(r.principal_type, r.principal_id) for r in await self._conn.execute(query)]

    async def count_owners(self, org_id: str, owner: str) -> int:
        ra = role_assignments.c
        query = select(func.count()).where(
            ra.organization_id == org_id,
            ra.principal_type == "user",
            ra.role == owner,
            ra.project_id == "",
        )
        return int((await self._conn.execute(query)).scalar_one())

    # -- groups ----------------------------------------------------------------------------

    async def add_group(self, group: Group) -> bool:
        values = {
            "id": group.id,
            "organization_id": group.organization_id,
            "name": group.name,
            "created_at": group.created_at,
        }
        return await _insert(self._conn, insert(groups).values(**values))

    async def _group(self, *conditions: ColumnElement[bool]) -> Group | None:
        row = (await self._conn.execute(select(groups).where(*conditions))).first()
        return Group(**row._mapping) if row else None

    async def get_group(self, org_id: str, group_id: str) -> Group | None:
        return await self._group(groups.c.organization_id == org_id, groups.c.id == group_id)

    async def get_group_by_name(self, org_id: str, name: str) -> Group | None:
        return await self._group(groups.c.organization_id == org_id, groups.c.name == name)

    async def list_groups(self, org_id: str, limit: int, after: Cursor | None) -> list[Group]:
        query = (
            select(groups)
            .where(groups.c.organization_id == org_id, _after(groups, after))
            .order_by(groups.c.created_at, groups.c.id)
            .limit(limit)
        )
        return [Group(**row._mapping) for row in await self._conn.execute(query)]

    async def delete_group(self, org_id: str, group_id: str) -> bool:
        conn = self._conn
        ra = role_assignments.c
        await conn.execute(
            delete(role_assignments).where(
                ra.organization_id == org_id,
                ra.principal_type == "group",
                ra.principal_id == group_id,
            )
        )
        gm = group_members.c
        await conn.execute(
            delete(group_members).where(gm.organization_id == org_id, gm.group_id == group_id)
        )
        result = await conn.execute(
            delete(groups).where(groups.c.organization_id == org_id, groups.c.id == group_id)
        )
        return bool(result.rowcount)

    async def groups_of_users(
        self, org_id: str, user_ids: Collection[str]
    ) -> list[tuple[str, Group]]:
        if not user_ids:
            return []
        gm = group_members.c
        query = (
            select(gm.user_id, groups)
            .join(groups, and_(groups.c.id == gm.group_id, groups.c.organization_id == org_id))
            .where(gm.organization_id == org_id, gm.user_id.in_(list(user_ids)))
            .order_by(groups.c.name)
        )
        found = []
        for row in await self._conn.execute(query):
            values = row._mapping
            group = Group(
                values["id"], values["organization_id"], values["name"], values["created_at"]
            )
            found.append((values["user_id"], group))
        return found

    async def add_group_member(self, org_id: str, group_id: str, user_id: str) -> bool:
        values = {"organization_id": org_id, "group_id": group_id, "user_id": user_id}
        return await _insert(self._conn, insert(group_members).values(**values))

    async def remove_group_member(self, org_id: str, group_id: str, user_id: str) -> bool:
        gm = group_members.c
        result = await self._conn.execute(
            delete(group_members).where(
                gm.organization_id == org_id, gm.group_id == group_id, gm.user_id == user_id
            )
        )
        return bool(result.rowcount)

    async def group_members(self, org_id: str, group_id: str) -> list[str]:
        gm = group_members.c
        query = (
            select(gm.user_id)
            .where(gm.organization_id == org_id, gm.group_id == group_id)
            .order_by(gm.user_id)
        )
        return [row[0] for row in await self._conn.execute(query)]

    async def groups_of_user(self, org_id: str, user_id: str) -> list[str]:
        gm = group_members.c
        query = select(gm.group_id).where(gm.organization_id == org_id, gm.user_id == user_id)
        return [row[0] for row in await self._conn.execute(query)]

    async def remove_user_from_groups(self, org_id: str, user_id: str) -> int:
        gm = group_members.c
        result = await self._conn.execute(
            delete(group_members).where(gm.organization_id == org_id, gm.user_id == user_id)
        )
        return int(result.rowcount)
