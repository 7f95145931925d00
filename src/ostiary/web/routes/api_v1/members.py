"""/api/v1/orgs/{org}/members: who belongs to an organization, with which roles.

- Listing and showing members needs ``members:read``; adding an existing user (at once, with
  at least one role), removing a member and setting a member's roles (in the organization or
  in one project) need ``members:manage``.
- No escalation: the roles a change adds or takes away must carry only permissions the caller
  holds (at that level); so an administrator can neither make an owner nor demote or remove
  one. The last owner can be neither demoted nor removed (409 ``last_owner``).
- ``POST .../leave``: the calling user leaves (the last owner cannot).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ostiary.features.accounts.service import AccountError
from ostiary.features.orgs.models import Forbidden, NotFound
from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1._common import member_rows
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    LimitQuery,
    MemberAdd,
    MemberOut,
    OrgRef,
    Page,
    RolesPut,
    UserRef,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["members"])


async def _member(call: OrgCall, user_id: str) -> MemberOut:
    membership = await call.unit.orgs.require_member(call.org.id, user_id)
    rows = await member_rows(call, [membership])
    if not rows:
        raise NotFound("no such member")
    return rows[0]


async def _held_roles(call: OrgCall, user_id: str, scope: str | bool | None) -> set[str]:
    """The user's direct roles at one level (``True``: at every level)."""
    held = await call.unit.rbac.assignments_of(call.org.id, ("user", user_id))
    return {a.role for a in held if scope is True or a.project_id == scope}


@router.get(
    "/orgs/{org}/members",
    summary="List members with their roles and groups (members:read)",
    responses=errors(400, 403, 404),
)
async def list_members(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[MemberOut]:
    async def work(call: OrgCall) -> Page[MemberOut]:
        await call.require("members:read")
        memberships, after = await call.unit.orgs.list_members(
            call.org.id, limit=limit, cursor=call.open_cursor("members", cursor)
        )
        return Page[MemberOut](
            items=await member_rows(call, memberships),
            next_cursor=call.seal_cursor("members", after),
        )

    return await in_org(request, org, "api.member.list", work, change=False)


@router.post(
    "/orgs/{org}/members",
    status_code=201,
    summary="Add an existing user with roles (members:manage)",
    responses=errors(403, 404, 409),
)
async def add_member(request: Request, org: OrgRef, body: MemberAdd) -> MemberOut:
    async def work(call: OrgCall) -> MemberOut:
        scope = await call.project_scope(body.project)
        await call.require("members:manage", project_id=scope)
        rbac = call.unit.rbac
        wanted = await call.role_ids(body.roles, project_id=scope)
        await call.refuse_role_escalation(wanted, "these roles", project_id=scope)
        try:
            user = await call.unit.accounts.get_by_email(body.email)
        except AccountError:
            raise NotFound("no user with that e-mail address") from None
        await call.unit.orgs.add_member(call.org.id, user.id, actor=call.actor)
        await rbac.set_roles(
            call.org.id, ("user", user.id), sorted(wanted), project_id=scope, actor=call.actor
        )
        return await _member(call, user.id)

    return await in_org(request, org, "api.member.add", work)


@router.get(
    "/orgs/{org}/members/{user_id}",
    summary="Show a member (members:read)",
    responses=errors(403, 404),
)
async def get_member(request: Request, org: OrgRef, user_id: UserRef) -> MemberOut:
    async def work(call: OrgCall) -> MemberOut:
        await call.require("members:read")
        return await _member(call, user_id)

    return await in_org(request, org, "api.member.show", work, change=False)


@router.delete(
    "/orgs/{org}/members/{user_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a member with their roles and group memberships (members:manage)",
    responses=errors(403, 404, 409),
)
async def remove_member(request: Request, org: OrgRef, user_id: UserRef) -> Response:
    async def work(call: OrgCall) -> None:
        if call.caller.key is not None or user_id != call.caller.user_id:  # leaving: none
            await call.require("members:manage")
            await call.unit.orgs.require_member(call.org.id, user_id)
            held = await _held_roles(call, user_id, True)
            await call.refuse_role_escalation(held, "this member's roles")
        await call.unit.orgs.remove_member(call.org.id, user_id, actor=call.actor)

    await in_org(request, org, "api.member.remove", work)
    return Response(status_code=204)


@router.put(
    "/orgs/{org}/members/{user_id}/roles",
    summary="Set a member's roles in the organization or one project (members:manage)",
    responses=errors(403, 404, 409),
)
async def set_member_roles(
    request: Request, org: OrgRef, user_id: UserRef, body: RolesPut
) -> MemberOut:
    async def work(call: OrgCall) -> MemberOut:
        scope = await call.project_scope(body.project)
        await call.require("members:manage", project_id=scope)
        await call.unit.orgs.require_member(call.org.id, user_id)
        rbac = call.unit.rbac
        wanted = await call.role_ids(body.roles, project_id=scope)
        current = await _held_roles(call, user_id, scope)
        await call.refuse_role_escalation(
            wanted ^ current, "the roles this change adds or removes", project_id=scope
        )
        await rbac.set_roles(
            call.org.id, ("user", user_id), sorted(wanted), project_id=scope, actor=call.actor
        )
        return await _member(call, user_id)

    return await in_org(request, org, "api.member.set_roles", work)


@router.post(
    "/orgs/{org}/leave",
    status_code=204,
    response_class=Response,
    summary="Leave the organization (the last owner cannot)",
    responses=errors(403, 404, 409),
)
async def leave(request: Request, org: OrgRef) -> Response:
    async def work(call: OrgCall) -> None:
        user_id = call.caller.user_id
        if call.caller.key is not None or user_id is None:
            raise Forbidden("an API key cannot leave; revoke it instead")
        await call.unit.orgs.remove_member(call.org.id, user_id, actor=call.actor)

    await in_org(request, org, "api.member.leave", work)
    return Response(status_code=204)
