"""/api/v1/orgs/{org}/roles: built-in and custom roles.

- Reading needs ``members:read``; creating, editing and deleting custom roles needs
  ``roles:manage``. Built-in roles (owner, admin, member, reader) are read-only (409
  ``builtin_role``).
- An edit that would make the include graph cyclic is refused with 409 ``role_cycle``, the
  cycle named in the message (features/rbac/service.py).
- No escalation: a role created or edited, and a role deleted, may carry only permissions the
  caller holds (``*`` only for owners), includes expanded.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ostiary.features.rbac.models import Role
from ostiary.web.management import BuiltinRole, OrgCall, in_org
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    LimitQuery,
    OrgRef,
    Page,
    RoleCreate,
    RoleOut,
    RoleRef,
    RoleUpdate,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["roles"])


async def _custom(call: OrgCall, ref: str) -> Role:
    role = await call.unit.rbac.get_role(call.org.id, ref)
    if role.builtin:
        raise BuiltinRole(f"the built-in role {role.name!r} is read-only")
    return role


@router.get(
    "/orgs/{org}/roles",
    summary="List roles (members:read)",
    description="The first page starts with the built-in roles, not counted in ``limit``.",
    responses=errors(400, 403, 404),
)
async def list_roles(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[RoleOut]:
    async def work(call: OrgCall) -> Page[RoleOut]:
        await call.require("members:read")
        items, after = await call.unit.rbac.list_roles(
            call.org.id, limit=limit, cursor=call.open_cursor("roles", cursor)
        )
        return Page[RoleOut](
            items=[RoleOut.of(r) for r in items], next_cursor=call.seal_cursor("roles", after)
        )

    return await in_org(request, org, "api.role.list", work, change=False)


@router.post(
    "/orgs/{org}/roles",
    status_code=201,
    summary="Create a custom role (roles:manage)",
    responses=errors(403, 404, 409),
)
async def create_role(request: Request, org: OrgRef, body: RoleCreate) -> RoleOut:
    async def work(call: OrgCall) -> RoleOut:
        await call.require("roles:manage")
        rbac = call.unit.rbac
        scope = await call.project_scope(body.project)
        granted = await rbac.permissions_granted_by(
            call.org.id, permissions=body.permissions, includes=body.includes, project_id=scope
        )
        await call.refuse_escalation(granted, "this role", project_id=scope)
        role = await rbac.create_role(
            call.org.id,
            body.name,
            permissions=body.permissions,
            includes=body.includes,
            project_id=scope,
            description=body.description,
            actor=call.actor,
        )
        return RoleOut.of(role)

    return await in_org(request, org, "api.role.create", work)


@router.get(
    "/orgs/{org}/roles/{role}", summary="Show a role (members:read)", responses=errors(403, 404)
)
async def get_role(request: Request, org: OrgRef, role: RoleRef) -> RoleOut:
    async def work(call: OrgCall) -> RoleOut:
        await call.require("members:read")
        return RoleOut.of(await call.unit.rbac.get_role(call.org.id, role))

    return await in_org(request, org, "api.role.show", work, change=False)


@router.patch(
    "/orgs/{org}/roles/{role}",
    summary="Edit a custom role (roles:manage)",
    responses=errors(403, 404, 409),
)
async def update_role(request: Request, org: OrgRef, role: RoleRef, body: RoleUpdate) -> RoleOut:
    async def work(call: OrgCall) -> RoleOut:
        await call.require("roles:manage")
        rbac = call.unit.rbac
        found = await _custom(call, role)
        scope = found.project_id
        await call.refuse_role_escalation([found.id], "this role", project_id=scope)
        granted = await rbac.permissions_granted_by(
            call.org.id,
            permissions=found.permissions if body.permissions is None else body.permissions,
            includes=found.includes if body.includes is None else body.includes,
            project_id=scope,
        )
        await call.refuse_escalation(granted, "the edited role", project_id=scope)
        updated = await rbac.update_role(
            call.org.id,
            found.id,
            name=body.name,
            description=body.description,
            permissions=body.permissions,
            includes=body.includes,
            actor=call.actor,
        )
        return RoleOut.of(updated)

    return await in_org(request, org, "api.role.update", work)


@router.delete(
    "/orgs/{org}/roles/{role}",
    status_code=204,
    response_class=Response,
    summary="Delete a custom role with its assignments (roles:manage)",
    responses=errors(403, 404, 409),
)
async def delete_role(request: Request, org: OrgRef, role: RoleRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("roles:manage")
        found = await _custom(call, role)
        await call.refuse_role_escalation([found.id], "this role", project_id=found.project_id)
        await call.unit.rbac.delete_role(call.org.id, found.id, actor=call.actor)

    await in_org(request, org, "api.role.delete", work)
    return Response(status_code=204)
