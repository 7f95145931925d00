"""/api/v1/orgs/{org}/service-accounts and /api/v1/orgs/{org}/keys (issue 12, sections 3-4):
the management API over features/apikeys.

- Service accounts: listing and showing need ``members:read``; creating (with roles),
  disabling, enabling and deleting need ``service-accounts:manage``, and the roles given must
  carry only permissions the caller holds (no escalation).
- API keys: listing and showing need ``keys:read``; creating needs ``keys:create``. Without
  ``service_account`` the key is the calling user's own (an API key caller creates one for its
  own owner); a key for a service account also needs ``service-accounts:manage`` and may carry
  only permissions the caller holds (explicit ones, or else all of the account's). Revoking and
  rotating need ``keys:revoke``, except for the caller's own keys. The key is in the creation's
  (and the rotation's) answer, once; it is stored as its HMAC only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from ostiary.features.apikeys.models import ApiKey, IssuedKey, OwnerType, ServiceAccount
from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    Description,
    LimitQuery,
    Name,
    OrgRef,
    Page,
    Permission,
    Ref,
    _In,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["service accounts and API keys"])

AccountRef = Annotated[
    str, Path(description="Service account id.", min_length=1, max_length=36, pattern=r"^[\w-]+$")
]
KeyRef = Annotated[
    str, Path(description="API key id (ost_sk_<id>_...).", min_length=1, max_length=64)
]
Cidr = Annotated[str, Field(min_length=1, max_length=64)]
Model = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class ServiceAccountCreate(_In):
    name: Name
    description: Description = ""
    project: Ref | None = Field(default=None, description="Project id or slug it belongs to.")
    roles: Annotated[list[Ref], Field(max_length=50)] = []


class ServiceAccountUpdate(_In):
    disabled: bool = Field(description="true: its keys stop at once, on every node.")


class ServiceAccountOut(BaseModel):
    id: str
    name: str
    description: str
    project_id: str | None
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, account: ServiceAccount) -> ServiceAccountOut:
        return cls(
            id=account.id,
            name=account.name,
            description=account.description,
            project_id=account.project_id,
            disabled=account.disabled,
            created_at=account.created_at,
        )


class KeyCreate(_In):
    service_account: Ref | None = Field(
        default=None, description="The service account's id; omitted: a key of your own."
    )
    name: Annotated[str, Field(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    permissions: Annotated[list[Permission], Field(max_length=50)] | None = Field(
        default=None, description="Narrowed to these; omitted: all of the owner's, always."
    )
    models: Annotated[list[Model], Field(max_length=100)] = []
    allowed_ips: Annotated[list[Cidr], Field(max_length=100)] | None = Field(
        default=None, description="CIDR ranges (IPv4, IPv6); omitted: any address."
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class KeyRotate(_In):
    overlap_seconds: int = Field(
        default=86400, ge=0, le=30 * 86400, description="How long the old secret still works."
    )


class KeyOut(BaseModel):
    id: str
    name: str
    owner_type: Literal["user", "service_account"]
    owner_id: str
    permissions: list[str] | None = Field(description="null: all of the owner's.")
    models: list[str]
    allowed_ips: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            name=key.name,
            owner_type=key.owner_type,
            owner_id=key.owner_id,
            permissions=sorted(key.permissions) if key.permissions is not None else None,
            models=list(key.models),
            allowed_ips=list(key.allowed_ips),
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class IssuedKeyOut(KeyOut):
    key: str = Field(description="The API key itself: shown this once, never again.")

    @classmethod
    def issued(cls, issued: IssuedKey) -> IssuedKeyOut:
        return cls(**KeyOut.of(issued.key).model_dump(), key=issued.secret)


# -- service accounts --------------------------------------------------------------------------


@router.post(
    "/orgs/{org}/service-accounts",
    status_code=201,
    summary="Create a service account with roles (service-accounts:manage)",
    responses=errors(403, 404, 409),
)
async def create_service_account(
    request: Request, org: OrgRef, body: ServiceAccountCreate
) -> ServiceAccountOut:
    async def work(call: OrgCall) -> ServiceAccountOut:
        scope = await call.project_scope(body.project)
        await call.require("service-accounts:manage")
        wanted = await call.role_ids(body.roles, project_id=scope)
        await call.refuse_role_escalation(wanted, "these roles", project_id=scope)
        account = await call.unit.api_keys.create_service_account(
            call.org.id,
            body.name,
            description=body.description,
            project=scope,
            roles=sorted(wanted),
            actor=call.actor,
        )
        return ServiceAccountOut.of(account)

    return await in_org(request, org, "api.service_account.create", work)


@router.get(
    "/orgs/{org}/service-accounts",
    summary="List the service accounts (members:read)",
    responses=errors(400, 403, 404),
)
async def list_service_accounts(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ServiceAccountOut]:
    async def work(call: OrgCall) -> Page[ServiceAccountOut]:
        await call.require("members:read")
        items, after = await call.unit.api_keys.list_service_accounts(
            call.org.id, limit=limit, cursor=call.open_cursor("service-accounts", cursor)
        )
        return Page[ServiceAccountOut](
            items=[ServiceAccountOut.of(a) for a in items],
            next_cursor=call.seal_cursor("service-accounts", after),
        )

    return await in_org(request, org, "api.service_account.list", work, change=False)


@router.get(
    "/orgs/{org}/service-accounts/{account}",
    summary="Show a service account (members:read)",
    responses=errors(403, 404),
)
async def get_service_account(
    request: Request, org: OrgRef, account: AccountRef
) -> ServiceAccountOut:
    async def work(call: OrgCall) -> ServiceAccountOut:
        await call.require("members:read")
        found = await call.unit.api_keys.get_service_account(call.org.id, account)
        return ServiceAccountOut.of(found)

    return await in_org(request, org, "api.service_account.show", work, change=False)


async def _account_roles(call: OrgCall, account_id: str) -> set[str]:
    held = await call.unit.rbac.assignments_of(call.org.id, ("service_account", account_id))
    return {a.role for a in held}


@router.patch(
    "/orgs/{org}/service-accounts/{account}",
    summary="Disable or enable a service account (service-accounts:manage)",
    responses=errors(403, 404),
)
async def update_service_account(
    request: Request, org: OrgRef, account: AccountRef, body: ServiceAccountUpdate
) -> ServiceAccountOut:
    async def work(call: OrgCall) -> ServiceAccountOut:
        await call.require("service-accounts:manage")
        await call.unit.api_keys.get_service_account(call.org.id, account)
        await call.refuse_role_escalation(
            await _account_roles(call, account), "this service account's roles"
        )
        updated = await call.unit.api_keys.set_service_account_disabled(
            call.org.id, account, body.disabled, actor=call.actor
        )
        return ServiceAccountOut.of(updated)

    return await in_org(request, org, "api.service_account.update", work)


@router.delete(
    "/orgs/{org}/service-accounts/{account}",
    status_code=204,
    response_class=Response,
    summary="Delete a service account: its roles go, its keys are revoked "
    "(service-accounts:manage)",
    responses=errors(403, 404),
)
async def delete_service_account(request: Request, org: OrgRef, account: AccountRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("service-accounts:manage")
        await call.unit.api_keys.get_service_account(call.org.id, account)
        await call.refuse_role_escalation(
            await _account_roles(call, account), "this service account's roles"
        )
        await call.unit.api_keys.delete_service_account(call.org.id, account, actor=call.actor)

    await in_org(request, org, "api.service_account.delete", work)
    return Response(status_code=204)


# -- API keys ----------------------------------------------------------------------------------


def _mine(call: OrgCall, key: ApiKey) -> bool:
    return (key.owner_type, key.owner_id) == call.caller.principal


@router.post(
    "/orgs/{org}/keys",
    status_code=201,
    summary="Create an API key, yours or a service account's (keys:create); the key is "
    "in this answer only",
    responses=errors(403, 404, 409),
)
async def create_key(request: Request, org: OrgRef, body: KeyCreate) -> IssuedKeyOut:
    async def work(call: OrgCall) -> IssuedKeyOut:
        await call.require("keys:create")
        owner: tuple[OwnerType, str] = call.caller.principal  # type: ignore[assignment]
        if body.service_account is not None:
            await call.require("service-accounts:manage")
            account = await call.unit.api_keys.get_service_account(
                call.org.id, body.service_account
            )
            owner = ("service_account", account.id)
            granted = (
                set(body.permissions)
                if body.permissions is not None
                else await call.unit.rbac.effective_permissions(
                    call.org.id, "service_account", account.id, account.project_id
                )
            )
            await call.refuse_escalation(granted, "this key")
        issued = await call.unit.api_keys.create_key(
            call.org.id,
            owner,
            name=body.name,
            permissions=body.permissions,
            models=body.models,
            allowed_ips=body.allowed_ips,
            expires_in=timedelta(days=body.expires_in_days) if body.expires_in_days else None,
            actor=call.actor,
        )
        return IssuedKeyOut.issued(issued)

    return await in_org(request, org, "api.key.create", work)


@router.get(
    "/orgs/{org}/keys",
    summary="List the organization's API keys, revoked ones included (keys:read)",
    responses=errors(400, 403, 404),
)
async def list_keys(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[KeyOut]:
    async def work(call: OrgCall) -> Page[KeyOut]:
        await call.require("keys:read")
        items, after = await call.unit.api_keys.list_keys(
            call.org.id, limit=limit, cursor=call.open_cursor("keys", cursor)
        )
        return Page[KeyOut](
            items=[KeyOut.of(k) for k in items], next_cursor=call.seal_cursor("keys", after)
        )

    return await in_org(request, org, "api.key.list", work, change=False)


@router.get(
    "/orgs/{org}/keys/{key}",
    summary="Show an API key (keys:read, or your own)",
    responses=errors(403, 404),
)
async def get_key(request: Request, org: OrgRef, key: KeyRef) -> KeyOut:
    async def work(call: OrgCall) -> KeyOut:
        found = await call.unit.api_keys.get_key(call.org.id, key)
        if not _mine(call, found):
            await call.require("keys:read")
        return KeyOut.of(found)

    return await in_org(request, org, "api.key.show", work, change=False)


@router.delete(
    "/orgs/{org}/keys/{key}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key at once, on every node (keys:revoke, or your own)",
    responses=errors(403, 404, 409),
)
async def revoke_key(request: Request, org: OrgRef, key: KeyRef) -> Response:
    async def work(call: OrgCall) -> None:
        found = await call.unit.api_keys.get_key(call.org.id, key)
        if not _mine(call, found):
            await call.require("keys:revoke")
        await call.unit.api_keys.revoke_key(call.org.id, found.id, actor=call.actor)

    await in_org(request, org, "api.key.revoke", work)
    return Response(status_code=204)


@router.post(
    "/orgs/{org}/keys/{key}/rotate",
    summary="Give an API key a new secret; the old one works for overlap_seconds more "
    "(keys:revoke, or your own); the new key is in this answer only",
    responses=errors(403, 404, 409),
)
async def rotate_key(request: Request, org: OrgRef, key: KeyRef, body: KeyRotate) -> IssuedKeyOut:
    async def work(call: OrgCall) -> IssuedKeyOut:
        found = await call.unit.api_keys.get_key(call.org.id, key)
        if not _mine(call, found):
            await call.require("keys:revoke")
        issued = await call.unit.api_keys.rotate_key(
            call.org.id,
            found.id,
            overlap=timedelta(seconds=body.overlap_seconds),
            actor=call.actor,
        )
        return IssuedKeyOut.issued(issued)

    return await in_org(request, org, "api.key.rotate", work)
