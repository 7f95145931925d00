"""Request and response models of the management API (/api/v1), its path and query
parameters, and the documented error responses every operation shares."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ostiary.features.orgs.models import Organization, Project
from ostiary.features.rbac.models import Group, Role
from ostiary.protocol.api_cursors import MAX_CURSOR
from ostiary.protocol.oidc import ACR_VALUES_SUPPORTED

__all__ = [
    "TEXT_PATTERN",
    "CursorQuery",
    "ErrorOut",
    "GroupCreate",
    "GroupOut",
    "GroupRef",
    "LimitQuery",
    "MemberAdd",
    "MemberOut",
    "OrgCreate",
    "OrgOut",
    "OrgRef",
    "OrgUpdate",
    "Page",
    "ProjectCreate",
    "ProjectOut",
    "ProjectRef",
    "ProjectUpdate",
    "RoleCreate",
    "RoleGrant",
    "RoleOut",
    "RoleRef",
    "RoleUpdate",
    "RolesPut",
    "UserRef",
    "errors",
]

T = TypeVar("T")
MAX_LIMIT = 200
# A reference in a path or body (an id, a slug or a name): printable, bounded.
_REF = r"^[^\x00-\x1f\x7f]+$"
# Free text: printable characters, tabs and line ends.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

OrgRef = Annotated[
    str, Path(description="Organization id or slug.", min_length=1, max_length=100, pattern=_REF)
]
ProjectRef = Annotated[
    str, Path(description="Project id or slug.", min_length=1, max_length=100, pattern=_REF)
]
RoleRef = Annotated[
    str,
    Path(description="Role id, name or built-in name.", min_length=1, max_length=100, pattern=_REF),
]
GroupRef = Annotated[
    str, Path(description="Group id or name.", min_length=1, max_length=100, pattern=_REF)
]
UserRef = Annotated[str, Path(description="User id.", min_length=1, max_length=36, pattern=_REF)]
LimitQuery = Annotated[
    int, Query(description=f"Items per page, 1 to {MAX_LIMIT}.", ge=1, le=MAX_LIMIT)
]
CursorQuery = Annotated[
    str | None,
    Query(
        description="next_cursor of the previous page of this same list.",
        min_length=1,
        max_length=MAX_CURSOR,
    ),
]

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_REF)]
Slug = Annotated[str, Field(min_length=2, max_length=63, pattern=r"^[a-z0-9-]+$")]
Ref = Annotated[str, Field(min_length=1, max_length=100, pattern=_REF)]
Permission = Annotated[str, Field(min_length=1, max_length=100, pattern=_REF)]
Description = Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, role_cycle.")
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


_ERROR_TEXT = {
    400: "Malformed request (invalid_json, invalid_cursor)",
    401: "Missing, invalid, expired or revoked credential (WWW-Authenticate: Bearer)",
    403: "Forbidden: a permission is missing (named), escalation, insufficient_scope, or a "
    "client_credentials token",
    404: "Not found, or not visible to the caller (another organization's)",
    409: "Conflict: taken name or slug, role_cycle, last_owner, builtin_role",
    422: "Invalid values (invalid_request, invalid, invalid_permission, invalid_policy)",
    503: "No mail server is configured (mail_not_configured)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of an operation: ``statuses`` and those any operation
    may answer (400 malformed, 401 credential, 403 scope or client token, 422 values)."""
    chosen = sorted({400, 401, 403, 422, *statuses})
    return {s: {"model": ErrorOut, "description": _ERROR_TEXT[s]} for s in chosen}


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


# -- organizations and projects ----------------------------------------------------------------


class OrgCreate(_In):
    name: Name
    slug: Slug | None = None


class OrgUpdate(_In):
    name: Name | None = None
    slug: Slug | None = None
    require_acr: Annotated[
        str | None,
        Field(
            json_schema_extra={"enum": [*ACR_VALUES_SUPPORTED, None]},
            description="The sign-in class every org-scoped client's request for this "
            "organization must reach (a session below it is sent to the second step first); "
            "null removes the requirement, absent leaves it.",
        ),
    ] = None


class OrgOut(BaseModel):
    id: str
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime
    require_acr: str | None = Field(
        None, description="The sign-in class org-scoped clients' requests need (owners set it)."
    )
    plan: str | None = Field(
        None, description="The plan policies see as principal.plan (set by the operator)."
    )

    @classmethod
    def of(cls, org: Organization) -> OrgOut:
        return cls(
            id=org.id,
            slug=org.slug,
            name=org.name,
            created_at=org.created_at,
            updated_at=org.updated_at,
            require_acr=org.require_acr,
            plan=org.plan,
        )


class ProjectCreate(_In):
    name: Name
    slug: Slug | None = None


class ProjectUpdate(_In):
    name: Name | None = None
    slug: Slug | None = None


class ProjectOut(BaseModel):
    id: str
    organization_id: str
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id,
            organization_id=project.organization_id,
            slug=project.slug,
            name=project.name,
            created_at=project.created_at,
        )


# -- roles ---------------------------------------------------------------------------------------


class RoleCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=_REF)]
    description: Description = ""
    permissions: Annotated[list[Permission], Field(max_length=100)] = []
    includes: Annotated[list[Ref], Field(max_length=100)] = []
    project: Ref | None = Field(default=None, description="Project id or slug: a project role.")


class RoleUpdate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=_REF)] | None = None
    description: Description | None = None
    permissions: Annotated[list[Permission], Field(max_length=100)] | None = None
    includes: Annotated[list[Ref], Field(max_length=100)] | None = None


class RoleOut(BaseModel):
    id: str
    name: str
    description: str
    permissions: list[str]
    includes: list[str]
    project_id: str | None
    builtin: bool
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, role: Role) -> RoleOut:
        return cls(
            id=role.id,
            name=role.name,
            description=role.description,
            permissions=sorted(role.permissions),
            includes=list(role.includes),
            project_id=role.project_id,
            builtin=role.builtin,
            created_at=role.created_at,
            updated_at=role.updated_at,
        )


class RoleGrant(BaseModel):
    """One direct role assignment."""

    role: str = Field(description="The role's name.")
    role_id: str
    project_id: str | None = Field(description="null: the whole organization.")


class RolesPut(_In):
    """Exactly these roles at one level (the organization, or one project)."""

    roles: Annotated[list[Ref], Field(max_length=50)]
    project: Ref | None = Field(default=None, description="Project id or slug.")


# -- members and groups --------------------------------------------------------------------------


class GroupBrief(BaseModel):
    id: str
    name: str


class MemberAdd(_In):
    email: Annotated[
        str, Field(min_length=3, max_length=320, pattern=r"^[^\x00-\x20\x7f]+@[^\x00-\x20\x7f]+$")
    ]
    roles: Annotated[list[Ref], Field(min_length=1, max_length=50)]
    project: Ref | None = Field(default=None, description="Project id or slug for the roles.")


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    joined_at: datetime
    roles: list[RoleGrant]
    groups: list[GroupBrief]


class GroupCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=_REF)]
    roles: Annotated[list[Ref], Field(max_length=50)] = []


class GroupOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    roles: list[RoleGrant]
    members: list[str] | None = Field(
        default=None, description="Member user ids (on a single group, not in listings)."
    )

    @classmethod
    def of(cls, group: Group, roles: list[RoleGrant], members: list[str] | None = None) -> GroupOut:
        return cls(
            id=group.id, name=group.name, created_at=group.created_at, roles=roles, members=members
        )
