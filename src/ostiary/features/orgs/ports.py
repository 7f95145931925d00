"""The store the organizations feature needs; the SQL adapter is
storage/sqla/org_repositories.py. Every method on org-owned rows takes the organization id and
is scoped by it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from ostiary.features.orgs.models import Cursor, Membership, Organization, Project

__all__ = ["MembershipListener", "OrgInvalidator", "OrgStore"]


class OrgStore(Protocol):
    async def add_org(self, org: Organization) -> bool:
        """Insert; False if the slug is taken."""
        ...

    async def get_org(self, org_id: str) -> Organization | None: ...

    async def orgs_of_user(self, user_id: str) -> list[Organization]:
        """The organizations the user is a member of, by name."""
        ...

    async def get_active_org(self, user_id: str) -> str | None:
        """The organization the user chose as active (org_preferences), if any."""
        ...

    async def set_active_org(self, user_id: str, org_id: str | None, now: datetime) -> None:
        """Choose (or, with None, forget) the user's active organization."""
        ...

    async def get_org_by_slug(self, slug: str) -> Organization | None: ...

    async def list_orgs(self, limit: int, after: Cursor | None) -> list[Organization]: ...

    async def list_orgs_of_user(
        self, user_id: str, limit: int, after: Cursor | None
    ) -> list[Organization]:
        """The organizations ``user_id`` is a member of, by (created_at, id)."""
        ...

    async def update_org(self, org: Organization) -> bool:
        """Replace slug, name, ``require_acr`` and updated_at; False if the slug is taken."""
        ...

    async def delete_org(self, org_id: str) -> bool:
        """Delete the organization and every row it owns (foreign keys cascade)."""
        ...

    async def lock_org(self, org_id: str) -> bool:
        """Hold the organization's row until the transaction ends (PostgreSQL: ``FOR
        UPDATE``; SQLite's writers already take turns); False if it does not exist. Changes
        that must keep an invariant over the whole organization (one owner at least) lock
        first."""
        ...

    async def add_project(self, project: Project) -> bool:
        """Insert; False if the slug is taken in the organization."""
        ...

    async def get_project(self, org_id: str, project_id: str) -> Project | None: ...

    async def get_project_by_slug(self, org_id: str, slug: str) -> Project | None: ...

    async def list_projects(
        self, org_id: str, limit: int, after: Cursor | None
    ) -> list[Project]: ...

    async def update_project(self, project: Project) -> bool:
        """Replace slug and name; False if the slug is taken in the organization."""
        ...

    async def delete_project(self, org_id: str, project_id: str) -> bool: ...

    async def add_membership(self, membership: Membership) -> Literal["added", "exists", "no_user"]:
        """Insert; or say the user is a member already, or is no user at all."""
        ...

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None: ...

    async def remove_membership(self, org_id: str, user_id: str) -> bool: ...

    async def list_memberships(
        self, org_id: str, limit: int, after: Cursor | None
    ) -> list[Membership]: ...


class MembershipListener(Protocol):
    """Told when a member is about to leave, inside the same transaction (RBAC drops their
    group memberships and role assignments, and refuses to lose the last owner), and when a
    project or the whole organization is about to be deleted."""

    async def member_leaving(self, org_id: str, user_id: str, *, actor: str | None) -> None: ...

    async def project_deleting(self, org_id: str, project_id: str, *, actor: str | None) -> None:
        """Told before a project goes: RBAC drops its roles and the assignments made in it."""
        ...

    async def organization_deleting(self, org_id: str, *, actor: str | None) -> None:
        """Told before an organization goes (its rows cascade): caches forget it."""
        ...


class OrgInvalidator(Protocol):
    """Told of every change of an organization's row and of its deletion, so that every
    node's :class:`~ostiary.features.orgs.cache.OrgCache` forgets it (web/runtime.py)."""

    async def organization_changed(self, org_id: str) -> None: ...
