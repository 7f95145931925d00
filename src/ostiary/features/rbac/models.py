"""Roles, groups and role assignments of an organization (issue 12, section 2).

The built-in roles exist in every organization without rows and cannot be edited or deleted;
their permission sets are fixed here. Permission names and the combining rule are in
protocol/permissions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ostiary.features.orgs.models import Forbidden, TenancyError
from ostiary.protocol.permissions import ALL, PERMISSIONS

__all__ = [
    "BUILTIN_ROLES",
    "OWNER",
    "PRINCIPAL_TYPES",
    "Assignment",
    "Escalation",
    "Group",
    "InvalidPermission",
    "Principal",
    "PrincipalType",
    "Role",
    "RoleCycle",
]

PrincipalType = Literal["user", "group", "service_account"]
PRINCIPAL_TYPES: tuple[PrincipalType, ...] = ("user", "group", "service_account")
Principal = tuple[PrincipalType, str]

OWNER = "owner"
BUILTIN_ROLES: dict[str, frozenset[str]] = {
    OWNER: frozenset({ALL}),
    "admin": frozenset(p for p in PERMISSIONS if p != "org:manage"),
    "member": frozenset(
        {"models:invoke", "models:read", "keys:create", "keys:read", "members:read"}
    ),
    "reader": frozenset({"models:read", "members:read", "keys:read"}),
}


@dataclass(frozen=True, slots=True)
class Role:
    id: str  # a built-in role's id is its name
    organization_id: str
    name: str
    permissions: frozenset[str]
    includes: tuple[str, ...]  # custom role ids or built-in names
    created_at: datetime | None
    updated_at: datetime | None
    project_id: str | None = None
    description: str = ""
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    organization_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Assignment:
    organization_id: str
    principal_type: PrincipalType
    principal_id: str
    role: str  # a custom role id or a built-in name
    project_id: str | None
    created_at: datetime


class RoleCycle(TenancyError):
    code = "role_cycle"


class InvalidPermission(TenancyError):
    code = "invalid_permission"


class Escalation(Forbidden):
    """A caller tried to grant (or shape a role with) permissions they do not hold."""

    code = "permission_escalation"
