"""/api/v1/orgs/{org}/groups: groups of members and the roles they confer.

- Reading needs ``members:read``; everything else ``groups:manage``.
- No escalation: a group's roles confer permissions on its members, so creating a group with
  roles, changing its roles, deleting it, and adding or removing a member are refused unless
  the caller holds every permission those roles carry (per level: organization or project).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ostiary.features.rbac.models import Group
from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1._common import grants
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    GroupCreate,
    GroupOut,
    GroupRef,
    LimitQuery,
    OrgRef,
    Page,
    RolesPut,
    UserRef,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["groups"])


async def _render(call: OrgCall, group: Group, *, members: bool) -> GroupOut:
    held = await call.unit.rbac.assignments_of_many(call.org.id, [("group", group.id)])
    listed = await call.unit.rbac.group_members(call.org.id, group.id) if members else None
    return GroupOut.of(group, (await grants(call, held)).get(group.id, []), listed)


async def _refuse_group_roles(call: OrgCall, group: Group, what: str) -> None:
    """Escalation check over every role the group confers, level by level."""
    held = await call.unit.rbac.assignments_of_many(call.org.id, [("group", group.id)])
    by_level: dict[str | None, set[str]] = {}
    for a in held:
        by_level.setdefault(a.project_id, set()).add(a.role)
    for level, roles in by_level.items():
        await call.refuse_role_escalation(roles, what, project_id=level)


@router.get(
    "/orgs/{org}/groups",
    summary="List groups with their roles (members:read)",
    responses=errors(400, 403, 404),
)
async def list_groups(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[GroupOut]:
    async def work(call: OrgCall) -> Page[GroupOut]:
        await call.require("members:read")
        items, after = await call.unit.rbac.list_groups(
            call.org.id, limit=limit, cursor=call.open_cursor("groups", cursor)
        )
        held = await call.unit.rbac.assignments_of_many(
            call.org.id, [("group", g.id) for g in items]
        )
        by_group = await grants(call, held)
        return Page[GroupOut](
            items=[GroupOut.of(g, by_group.get(g.id, [])) for g in items],
            next_cursor=call.seal_cursor("groups", after),
        )

    return await in_org(request, org, "api.group.list", work, change=False)


@router.post(
    "/orgs/{org}/groups",
    status_code=201,
    summary="Create a group, optionally with organization-level roles (groups:manage)",
    responses=errors(403, 404, 409),
)
async def create_group(request: Request, org: OrgRef, body: GroupCreate) -> GroupOut:
    async def work(call: OrgCall) -> GroupOut:
        await call.require("groups:manage")
        rbac = call.unit.rbac
        wanted = await call.role_ids(body.roles)
        await call.refuse_role_escalation(wanted, "these roles")
        group = await rbac.create_group(
            call.org.id, body.name, roles=sorted(wanted), actor=call.actor
        )
        return await _render(call, group, members=True)

    return await in_org(request, org, "api.group.create", work)


@router.get(
    "/orgs/{org}/groups/{group}",
    summary="Show a group with its roles and members (members:read)",
    responses=errors(403, 404),
)
async def get_group(request: Request, org: OrgRef, group: GroupRef) -> GroupOut:
    async def work(call: OrgCall) -> GroupOut:
        await call.require("members:read")
        found = await call.unit.rbac.get_group(call.org.id, group)
        return await _render(call, found, members=True)

    return await in_org(request, org, "api.group.show", work, change=False)


@router.delete(
    "/orgs/{org}/groups/{group}",
    status_code=204,
    response_class=Response,
    summary="Delete a group with its memberships and roles (groups:manage)",
    responses=errors(403, 404),
)
async def delete_group(request: Request, org: OrgRef, group: GroupRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("groups:manage")
        found = await call.unit.rbac.get_group(call.org.id, group)
        await _refuse_group_roles(call, found, "the roles this group confers")
        await call.unit.rbac.delete_group(call.org.id, found.id, actor=call.actor)

    await in_org(request, org, "api.group.delete", work)
    return Response(status_code=204)


@router.put(
    "/orgs/{org}/groups/{group}/roles",
    summary="Set a group's roles in the organization or one project (groups:manage)",
    responses=errors(403, 404, 409),
)
async def set_group_roles(
    request: Request, org: OrgRef, group: GroupRef, body: RolesPut
) -> GroupOut:
    async def work(call: OrgCall) -> GroupOut:
        rbac = call.unit.rbac
        scope = await call.project_scope(body.project)
        await call.require("groups:manage", project_id=scope)
        found = await rbac.get_group(call.org.id, group)
        wanted = await call.role_ids(body.roles, project_id=scope)
        held = await rbac.assignments_of_many(call.org.id, [("group", found.id)])
        current = {a.role for a in held if a.project_id == scope}
        await call.refuse_role_escalation(
            wanted ^ current, "the roles this change adds or removes", project_id=scope
        )
        await rbac.set_roles(
            call.org.id, ("group", found.id), sorted(wanted), project_id=scope, actor=call.actor
        )
        return await _render(call, found, members=True)

    return await in_org(request, org, "api.group.set_roles", work)


@router.post(
    "/orgs/{org}/groups/{group}/members/{user_id}",
    status_code=204,
    response_class=Response,
    summary="Add a member of the organization to the group (groups:manage)",
    responses=errors(403, 404, 409),
)
async def add_group_member(
    request: Request, org: OrgRef, group: GroupRef, user_id: UserRef
) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("groups:manage")
        found = await call.unit.rbac.get_group(call.org.id, group)
        await _refuse_group_roles(call, found, "the roles this group confers")
        await call.unit.rbac.add_group_member(call.org.id, found.id, user_id, actor=call.actor)

    await in_org(request, org, "api.group.member.add", work)
    return Response(status_code=204)


@router.delete(
    "/orgs/{org}/groups/{group}/members/{user_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a user from the group (groups:manage)",
    responses=errors(403, 404),
)
async def remove_group_member(
    request: Request, org: OrgRef, group: GroupRef, user_id: UserRef
) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("groups:manage")
        found = await call.unit.rbac.get_group(call.org.id, group)
        await _refuse_group_roles(call, found, "the roles this group confers")
        await call.unit.rbac.remove_group_member(call.org.id, found.id, user_id, actor=call.actor)

    await in_org(request, org, "api.group.member.remove", work)
    return Response(status_code=204)
