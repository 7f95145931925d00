"""The stores RBAC needs (SQL adapter: storage/sqla/org_repositories.py) and the fan-out of
what a change touches. Every method takes the organization id and is scoped by it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from ostiary.features.orgs.models import Cursor
from ostiary.features.rbac.models import Assignment, Group, Principal, Role

__all__ = ["PermissionInvalidator", "RbacStore", "RoleGraph"]

# Custom roles of an organization: own permissions and includes, by role id.
RoleGraph = tuple[Mapping[str, frozenset[str]], Mapping[str, tuple[str, ...]]]


class RbacStore(Protocol):
    async def add_role(self, role: Role) -> bool:
        """Insert the role and its includes; False if the name is taken at that level."""
        ...

    async def update_role(self, role: Role) -> bool:
        """Replace name, description, permissions and includes; False on a name clash."""
        ...

    async def delete_role(self, org_id: str, role_id: str) -> bool:
        """Delete the role, its includes, the includes naming it and its assignments."""
        ...

    async def get_role(self, org_id: str, role_id: str) -> Role | None: ...

    async def get_role_by_name(
        self, org_id: str, project_id: str | None, name: str
    ) -> Role | None: ...

    async def list_roles(self, org_id: str, limit: int, after: Cursor | None) -> list[Role]: ...

    async def get_roles(self, org_id: str, role_ids: Collection[str]) -> list[Role]:
        """The custom roles among ``role_ids``, in one query."""
        ...

    async def drop_project(self, org_id: str, project_id: str) -> list[Principal]:
        """Delete the project's roles (with the includes and assignments naming them) and the
        assignments made in the project; the principals that held any of them."""
        ...

    async def role_graph(self, org_id: str) -> RoleGraph: ...

    async def add_assignment(self, assignment: Assignment) -> bool:
        """Insert; False if it exists."""
        ...

    async def remove_assignment(
        self, org_id: str, principal: Principal, role: str, project_id: str | None
    ) -> bool: ...

    async def assignments_of(
        self, org_id: str, principals: Collection[Principal]
    ) -> list[Assignment]: ...

    async def remove_assignments_of(self, org_id: str, principal: Principal) -> int: ...

    async def holders(self, org_id: str, roles: Collection[str]) -> list[Principal]:
        """The principals assigned any of ``roles`` (at any level), distinct."""
        ...

    async def count_owners(self, org_id: str, owner: str) -> int:
        """Users holding ``owner`` directly at the organization level."""
        ...

    async def add_group(self, group: Group) -> bool:
        """Insert; False if the name is taken."""
        ...

    async def get_group(self, org_id: str, group_id: str) -> Group | None: ...

    async def get_group_by_name(self, org_id: str, name: str) -> Group | None: ...

    async def list_groups(self, org_id: str, limit: int, after: Cursor | None) -> list[Group]: ...

    async def delete_group(self, org_id: str, group_id: str) -> bool:
        """Delete the group, its memberships and its role assignments."""
        ...

    async def groups_of_users(
        self, org_id: str, user_ids: Collection[str]
    ) -> list[tuple[str, Group]]:
        """(user id, group) for every group membership of ``user_ids``, in one query."""
        ...

    async def add_group_member(self, org_id: str, group_id: str, user_id: str) -> bool: ...

    async def remove_group_member(self, org_id: str, group_id: str, user_id: str) -> bool: ...

    async def group_members(self, org_id: str, group_id: str) -> list[str]: ...

    async def groups_of_user(self, org_id: str, user_id: str) -> list[str]: ...

    async def remove_user_from_groups(self, org_id: str, user_id: str) -> int: ...


class PermissionInvalidator(Protocol):
    """Makes every node forget the cached effective permissions of ``principals`` in the
    organization (all of its principals when None), once the change commits."""

    async def permissions_changed(
        self, org_id: str, principals: Collection[Principal] | None
    ) -> None: ...
