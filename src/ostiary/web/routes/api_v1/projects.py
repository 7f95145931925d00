"""/api/v1/orgs/{org}/projects: any member sees the projects; creating, renaming and
deleting them needs ``projects:manage``. Deleting a project deletes its roles and the role
assignments made in it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    LimitQuery,
    OrgRef,
    Page,
    ProjectCreate,
    ProjectOut,
    ProjectRef,
    ProjectUpdate,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["projects"])


@router.post(
    "/orgs/{org}/projects",
    status_code=201,
    summary="Create a project (projects:manage)",
    responses=errors(403, 404, 409),
)
async def create_project(request: Request, org: OrgRef, body: ProjectCreate) -> ProjectOut:
    async def work(call: OrgCall) -> ProjectOut:
        await call.require("projects:manage")
        project = await call.unit.orgs.create_project(
            call.org.id, body.name, slug=body.slug, actor=call.actor
        )
        return ProjectOut.of(project)

    return await in_org(request, org, "api.project.create", work)


@router.get("/orgs/{org}/projects", summary="List the projects", responses=errors(400, 404))
async def list_projects(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ProjectOut]:
    async def work(call: OrgCall) -> Page[ProjectOut]:
        items, after = await call.unit.orgs.list_projects(
            call.org.id, limit=limit, cursor=call.open_cursor("projects", cursor)
        )
        return Page[ProjectOut](
            items=[ProjectOut.of(p) for p in items],
            next_cursor=call.seal_cursor("projects", after),
        )

    return await in_org(request, org, "api.project.list", work, change=False)


@router.get("/orgs/{org}/projects/{project}", summary="Show a project", responses=errors(404))
async def get_project(request: Request, org: OrgRef, project: ProjectRef) -> ProjectOut:
    async def work(call: OrgCall) -> ProjectOut:
        return ProjectOut.of(await call.unit.orgs.get_project(call.org.id, project))

    return await in_org(request, org, "api.project.show", work, change=False)


@router.patch(
    "/orgs/{org}/projects/{project}",
    summary="Rename a project (projects:manage)",
    responses=errors(403, 404, 409),
)
async def update_project(
    request: Request, org: OrgRef, project: ProjectRef, body: ProjectUpdate
) -> ProjectOut:
    async def work(call: OrgCall) -> ProjectOut:
        await call.require("projects:manage")
        updated = await call.unit.orgs.update_project(
            call.org.id, project, name=body.name, slug=body.slug, actor=call.actor
        )
        return ProjectOut.of(updated)

    return await in_org(request, org, "api.project.update", work)


@router.delete(
    "/orgs/{org}/projects/{project}",
    status_code=204,
    response_class=Response,
    summary="Delete a project with its roles and assignments (projects:manage)",
    responses=errors(403, 404),
)
async def delete_project(request: Request, org: OrgRef, project: ProjectRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("projects:manage")
        await call.unit.orgs.delete_project(call.org.id, project, actor=call.actor)

    await in_org(request, org, "api.project.delete", work)
    return Response(status_code=204)
