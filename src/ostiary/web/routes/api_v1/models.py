"""/api/v1/orgs/{org}/models (issue 13, section 1): an organization's entries in the model
catalog (features/models), whose attributes AuthZEN decisions read for the models a request
names by id. Reading needs ``models:read``; creating, replacing and deleting need
``models:manage``. Deployment-wide entries are the operator's (``ostiary models create``
without ``--org``); ``effective_attributes`` shows them with the organization's entry over
them, as a decision sees them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from ostiary.features.models.models import ModelEntry
from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1.schemas import CursorQuery, LimitQuery, OrgRef, Page, _In, errors

__all__ = ["router"]

router = APIRouter(tags=["models"])

_MODEL_ID = r"^[^\x00-\x1f\x7f/]+$"
ModelRef = Annotated[
    str, Path(description="Model id.", min_length=1, max_length=200, pattern=_MODEL_ID)
]
Attributes = Annotated[
    dict[str, Any],
    Field(
        max_length=100,
        description="Attribute name -> a string, an integer, a boolean or a list of them.",
    ),
]


class ModelCreate(_In):
    id: Annotated[str, Field(min_length=1, max_length=200, pattern=_MODEL_ID)]
    attributes: Attributes = {}


class ModelReplace(_In):
    attributes: Attributes


class ModelOut(BaseModel):
    id: str
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, entry: ModelEntry) -> ModelOut:
        return cls(
            id=entry.model_id,
            attributes=dict(entry.attributes),
            created_at=entry.created_at,
            updated_at=entry.updated_at,
        )


class ModelShown(ModelOut):
    effective_attributes: dict[str, Any] = Field(
        description="The deployment-wide entry's attributes with this one's over them."
    )


@router.post(
    "/orgs/{org}/models",
    status_code=201,
    summary="Add a model to the organization's catalog (models:manage)",
    responses=errors(403, 404, 409),
)
async def create_model(request: Request, org: OrgRef, body: ModelCreate) -> ModelOut:
    async def work(call: OrgCall) -> ModelOut:
        await call.require("models:manage")
        entry = await call.unit.models.create(
            call.org.id, body.id, body.attributes, actor=call.actor
        )
        return ModelOut.of(entry)

    return await in_org(request, org, "api.model.create", work)


@router.get(
    "/orgs/{org}/models",
    summary="List the organization's catalog entries (models:read)",
    responses=errors(400, 403, 404),
)
async def list_models(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ModelOut]:
    async def work(call: OrgCall) -> Page[ModelOut]:
        await call.require("models:read")
        items, after = await call.unit.models.list(
            call.org.id, limit=limit, after=call.open_cursor("models", cursor)
        )
        return Page[ModelOut](
            items=[ModelOut.of(m) for m in items], next_cursor=call.seal_cursor("models", after)
        )

    return await in_org(request, org, "api.model.list", work, change=False)


@router.get(
    "/orgs/{org}/models/{model}",
    summary="Show a catalog entry and the attributes decisions see (models:read)",
    responses=errors(403, 404),
)
async def get_model(request: Request, org: OrgRef, model: ModelRef) -> ModelShown:
    async def work(call: OrgCall) -> ModelShown:
        await call.require("models:read")
        entry = await call.unit.models.get(call.org.id, model)
        merged = await call.unit.models.attributes(call.org.id, model)
        return ModelShown(**ModelOut.of(entry).model_dump(), effective_attributes=merged)

    return await in_org(request, org, "api.model.show", work, change=False)


@router.put(
    "/orgs/{org}/models/{model}",
    summary="Replace a catalog entry's attributes (models:manage)",
    responses=errors(403, 404),
)
async def replace_model(
    request: Request, org: OrgRef, model: ModelRef, body: ModelReplace
) -> ModelOut:
    async def work(call: OrgCall) -> ModelOut:
        await call.require("models:manage")
        entry = await call.unit.models.update(call.org.id, model, body.attributes, actor=call.actor)
        return ModelOut.of(entry)

    return await in_org(request, org, "api.model.replace", work)


@router.delete(
    "/orgs/{org}/models/{model}",
    status_code=204,
    response_class=Response,
    summary="Remove a catalog entry (models:manage)",
    responses=errors(403, 404),
)
async def delete_model(request: Request, org: OrgRef, model: ModelRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("models:manage")
        await call.unit.models.delete(call.org.id, model, actor=call.actor)

    await in_org(request, org, "api.model.delete", work)
    return Response(status_code=204)
