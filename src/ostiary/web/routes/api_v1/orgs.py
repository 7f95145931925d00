"""/api/v1/orgs: create, list, show, rename and delete organizations.

- Any user (access token with ``ostiary.manage``) may create an organization and becomes its
  owner; an API key may not (it acts inside its own organization only).
- The list is the organizations the caller belongs to (for an API key, its own).
- Deleting needs ``org:manage`` and removes the organization with everything it owns
  (projects, memberships, roles, groups, assignments, and what later features attach to it);
  users stay, and the audit trail keeps the organization's events.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ostiary.features.orgs.models import Forbidden
from ostiary.features.orgs.service import UNCHANGED
from ostiary.web.deps import runtime_of
from ostiary.web.management import (
    Caller,
    OrgCall,
    in_org,
    open_list_cursor,
    run_as_caller,
    seal_list_cursor,
)
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    LimitQuery,
    OrgCreate,
    OrgOut,
    OrgRef,
    OrgUpdate,
    Page,
    errors,
)
from ostiary.web.runtime import Unit

__all__ = ["router"]

router = APIRouter(tags=["organizations"])


@router.post("/orgs", status_code=201, summary="Create an organization", responses=errors(403, 409))
async def create_org(request: Request, body: OrgCreate) -> OrgOut:
    async def work(unit: Unit, caller: Caller) -> OrgOut:
        if caller.key is not None or caller.user_id is None:
            raise Forbidden("API keys act inside their organization; create one as a user")
        org = await unit.orgs.create(body.name, slug=body.slug, actor=caller.actor)
        await unit.orgs.add_member(org.id, caller.user_id, actor=caller.actor)
        await unit.rbac.assign(org.id, caller.principal, "owner", actor=caller.actor)
        return OrgOut.of(org)

    return await run_as_caller(request, "api.org.create", work)


@router.get("/orgs", summary="Organizations the caller belongs to", responses=errors(400))
async def list_orgs(
    request: Request, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[OrgOut]:
    async def work(unit: Unit, caller: Caller) -> Page[OrgOut]:
        if caller.key is not None:
            org = await unit.orgs.get(caller.key.organization_id)
            return Page[OrgOut](items=[OrgOut.of(org)], next_cursor=None)
        assert caller.user_id is not None
        key = runtime_of(request).api_cursor_key
        scope = f"user:{caller.user_id}|orgs"
        items, after = await unit.orgs.list_orgs_of_user(
            caller.user_id, limit=limit, cursor=open_list_cursor(key, scope, cursor)
        )
        return Page[OrgOut](
            items=[OrgOut.of(o) for o in items], next_cursor=seal_list_cursor(key, scope, after)
        )

    return await run_as_caller(request, "api.org.list", work, change=False)


@router.get("/orgs/{org}", summary="Show an organization", responses=errors(404))
async def get_org(request: Request, org: OrgRef) -> OrgOut:
    async def work(call: OrgCall) -> OrgOut:
        return OrgOut.of(call.org)

    return await in_org(request, org, "api.org.show", work, change=False)


@router.patch(
    "/orgs/{org}",
    summary="Rename an organization, or set the sign-in class it requires (org:manage)",
    responses=errors(403, 404, 409),
)
async def update_org(request: Request, org: OrgRef, body: OrgUpdate) -> OrgOut:
    async def work(call: OrgCall) -> OrgOut:
        await call.require("org:manage")
        require_acr = body.require_acr if "require_acr" in body.model_fields_set else UNCHANGED
        updated = await call.unit.orgs.update(
            call.org.id,
            name=body.name,
            slug=body.slug,
            require_acr=require_acr,
            actor=call.actor,
        )
        return OrgOut.of(updated)

    return await in_org(request, org, "api.org.update", work)


@router.delete(
    "/orgs/{org}",
    status_code=204,
    response_class=Response,
    summary="Delete an organization and everything it owns (org:manage)",
    responses=errors(403, 404),
)
async def delete_org(request: Request, org: OrgRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("org:manage")
        await call.unit.orgs.delete(call.org.id, actor=call.actor)

    await in_org(request, org, "api.org.delete", work)
    return Response(status_code=204)
