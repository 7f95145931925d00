"""Roles, groups, assignments and effective permissions (issue 12, section 2).

- Built-in roles (models.py ``BUILTIN_ROLES``) exist in every organization; custom roles are
  named permission sets at the organization level or in one project, and may include other
  roles of the organization (an organization-level role only organization-level ones). A
  role's permissions are its own plus those of every role it includes, transitively (NIST RBAC,
  ANSI INCITS 359-2004 section 6.2); an edit that would close a cycle is refused with the cycle
  named, before anything is written.
- Effective permissions of a principal in an organization (or in one project: the
  organization-level assignments plus that project's) are the union over its direct roles and,
  for a user, the roles of the groups they belong to, includes expanded. ``*`` is kept as a
  wildcard, not expanded: test with :func:`allows`.
- Computed once per (organization, principal, project) and cached on each node (cache.py).
  A change invalidates exactly what it touches, on every node (PermissionInvalidator):
  an assignment change, its principal (for a group, its members); a group membership change,
  that user; a role edit or deletion, every principal holding the role, or a role that
  includes it, directly or via a group (its members). More than ``WHOLE_ORG_AFTER`` principals
  become one organization-wide invalidation.
- An organization keeps at least one owner: a user holding the built-in ``owner`` role
  directly at the organization level. Removing or demoting the last one is refused
  (``last_owner``) under the organization's row lock, so concurrent requests cannot each
  remove one of the last two.
- Every change is audited with its actor and organization; lookups of another organization's
  role or group by id are ``not_found``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.orgs.models import (
    Conflict,
    Forbidden,
    InvalidInput,
    LastOwner,
    NotFound,
    decode_cursor,
    encode_cursor,
)
from ostiary.features.orgs.service import MAX_PAGE, OrgService, check_name
from ostiary.features.rbac.cache import PermissionCache
from ostiary.features.rbac.models import (
    BUILTIN_ROLES,
    OWNER,
    PRINCIPAL_TYPES,
    Assignment,
    Group,
    InvalidPermission,
    Principal,
    PrincipalType,
    Role,
    RoleCycle,
)
from ostiary.features.rbac.ports import PermissionInvalidator, RbacStore
from ostiary.protocol import permissions as perms
from ostiary.protocol.permissions import allows

__all__ = ["WHOLE_ORG_AFTER", "EffectivePermissions", "RbacService", "allows"]

WHOLE_ORG_AFTER = 1_000
_T = TypeVar("_T", Role, Group)


def _builtin(org_id: str, name: str) -> Role:
    return Role(name, org_id, name, BUILTIN_ROLES[name], (), None, None, builtin=True)


def _check_permissions(names: Iterable[str]) -> frozenset[str]:
    try:
        return perms.validate_permissions(names)
    except perms.InvalidPermission as exc:
        raise InvalidPermission(str(exc)) from None


def _role_name(name: str) -> str:
    name = check_name(name, "role name", 100)
    if name.lower() in BUILTIN_ROLES:
        raise Conflict(f"{name!r} is a built-in role")
    return name


def _page(items: list[_T], limit: int) -> tuple[list[_T], str | None]:
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    assert last.created_at is not None
    return items, encode_cursor(last.created_at, last.id)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
    return limit


class EffectivePermissions:
    """Effective permissions read through the node's cache (cache.py), without the rest of
    :class:`RbacService`: what a hot path that only checks permissions builds (API-key
    verification). A unit's :class:`RbacService` shares its reader, so that once the unit
    changed anything (``changed``) its reads, which see the uncommitted writes, stay out of the
    shared cache."""

    __slots__ = ("_cache", "_store", "changed")

    def __init__(self, store: RbacStore, cache: PermissionCache) -> None:
        self._store = store
        self._cache = cache
        self.changed = False

    async def effective_permissions(
        self,
        org_id: str,
        principal_type: PrincipalType,
        principal_id: str,
        project_id: str | None = None,
    ) -> frozenset[str]:
        """The principal's permissions in the organization, or in one of its projects (``*``
        kept as a wildcard: use :func:`allows`). Empty for a stranger to the organization."""
        cache = self._cache
        cached = cache.get(org_id, principal_type, principal_id, project_id)
        if cached is not None and not self.changed:
            return cached
        stamp = cache.stamp(org_id, principal_type, principal_id)
        principals: list[Principal] = [(principal_type, principal_id)]
        if principal_type == "user":
            groups = await self._store.groups_of_user(org_id, principal_id)
            principals.extend(("group", group_id) for group_id in groups)
        held = await self._store.assignments_of(org_id, principals)
        roles = {a.role for a in held if a.project_id is None or a.project_id == project_id}
        result: frozenset[str] = frozenset()
        if roles:
            own, includes = await self._store.role_graph(org_id)
            result = perms.expand(roles, {**own, **BUILTIN_ROLES}, includes)
        if not self.changed:
            cache.put(org_id, principal_type, principal_id, project_id, result, stamp)
        return result

    def stamp(self, org_id: str, principal_type: PrincipalType, principal_id: str) -> object:
        """The cache's stamp of the principal (cache.py): equal stamps, equal effective
        permissions, in the organization and in each of its projects. None once this unit
        changed anything (its reads are not the committed state)."""
        return None if self.changed else self._cache.stamp(org_id, principal_type, principal_id)


class RbacService:
    def __init__(
        self,
        store: RbacStore,
        orgs: OrgService,
        audit: AuditTrail,
        clock: Clock,
        cache: PermissionCache,
        invalidator: PermissionInvalidator,
        permissions: EffectivePermissions | None = None,
    ) -> None:
        """``permissions``: the unit's reader, if it has one (see :class:`EffectivePermissions`);
        one over ``store`` and ``cache`` otherwise."""
        self._store = store
        self._orgs = orgs
        self._audit = audit
        self._clock = clock
        self._invalidator = invalidator
        # ``changed`` is set by the first change of this unit: from then on its reads see
        # uncommitted writes, which must not reach the shared cache.
        self._permissions = permissions or EffectivePermissions(store, cache)

    async def _touched(self, org_id: str, principals: Collection[Principal] | None) -> None:
        """Invalidate what a change touches; a group stands for its members."""
        self._permissions.changed = True
        if principals is not None:
            expanded: set[Principal] = set()
            for principal in principals:
                expanded.add(principal)
                if principal[0] == "group":
                    members = await self._store.group_members(org_id, principal[1])
                    expanded.update(("user", user_id) for user_id in members)
            principals = None if len(expanded) > WHOLE_ORG_AFTER else expanded
        if principals is None or principals:
            await self._invalidator.permissions_changed(org_id, principals)

    # -- roles -----------------------------------------------------------------------------

    async def get_role(self, org_id: str, ref: str, *, project_id: str | None = None) -> Role:
        """A role of this organization by built-in name, id, or name (the organization's
        level first, then ``project_id``'s)."""
        if ref in BUILTIN_ROLES:
            return _builtin(org_id, ref)
        role = await self._store.get_role(org_id, ref) if len(ref) <= 36 else None
        if role is None and len(ref) <= 100:
            role = await self._store.get_role_by_name(org_id, None, ref)
            if role is None and project_id is not None:
                role = await self._store.get_role_by_name(org_id, project_id, ref)
        if role is None:
            raise NotFound(f"no such role {ref[:100]!r}")
        return role

    async def list_roles(
        self, org_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Role], str | None]:
        """Custom roles by creation, paged; the first page starts with the built-in ones
        (not counted in ``limit``)."""
        await self._orgs.get(org_id)
        rows = await self._store.list_roles(org_id, _limit(limit) + 1, decode_cursor(cursor))
        items, next_cursor = _page(rows, limit)
        if cursor is None:
            items = [_builtin(org_id, name) for name in BUILTIN_ROLES] + items
        return items, next_cursor

    async def _includes(
        self, org_id: str, refs: Sequence[str], project_id: str | None
    ) -> tuple[str, ...]:
        resolved: list[str] = []
        for ref in refs:
            role = await self.get_role(org_id, ref, project_id=project_id)
            if role.project_id is not None and role.project_id != project_id:
                raise InvalidInput(
                    f"role {role.name!r} belongs to a project: only roles of that project "
                    "may include it"
                )
            if role.id not in resolved:
                resolved.append(role.id)
        return tuple(resolved)

    async def _refuse_cycle(self, org_id: str, role_id: str, includes: tuple[str, ...]) -> None:
        _own, edges = await self._store.role_graph(org_id)
        graph = {rid: tuple(inc) for rid, inc in edges.items()}
        graph[role_id] = includes
        cycle = perms.find_cycle(graph)
        if cycle is None:
            return
        ring = cycle[:-1]
        if role_id in ring:  # start where the edit is: "edited -> ... -> edited"
            at = ring.index(role_id)
            ring = ring[at:] + ring[:at]
        cycle = [*ring, ring[0]]
        names: list[str] = []
        for rid in cycle:
            role = await self._store.get_role(org_id, rid) if rid not in BUILTIN_ROLES else None
            names.append(role.name if role is not None else rid)
        raise RoleCycle(f"role includes would form a cycle: {' -> '.join(names)}")

    async def create_role(
        self,
        org_id: str,
        name: str,
        *,
        permissions: Iterable[str] = (),
        includes: Sequence[str] = (),
        project_id: str | None = None,
        description: str = "",
        actor: str | None,
    ) -> Role:
        await self._orgs.get(org_id)
        name = _role_name(name)
        if project_id is not None:
            project_id = (await self._orgs.get_project(org_id, project_id)).id
        granted = _check_permissions(permissions)
        if len(description) > 500:
            raise InvalidInput("description must be at most 500 characters")
        included = await self._includes(org_id, includes, project_id)
        now = self._clock.now()
        role = Role(
            str(uuid.uuid4()),
            org_id,
            name,
            granted,
            included,
            now,
            now,
            project_id=project_id,
            description=description,
        )
        # A new role is included by nobody, so it cannot close a cycle.
        if not await self._store.add_role(role):
            raise Conflict(f"a role named {name!r} exists")
        self._permissions.changed = True
        await self._audit.org_change(
            "rbac.role.create",
            org_id,
            actor,
            role.id,
            name=name,
            permissions=sorted(granted),
            includes=list(included),
            project_id=project_id,
        )
        return role

    async def _affected_by_role(self, org_id: str, role_id: str) -> list[Principal]:
        """Who holds ``role_id``, directly or through roles that include it."""
        _own, edges = await self._store.role_graph(org_id)
        affected = {role_id}
        grew = True
        while grew:  # bounded by the number of roles
            grew = False
            for rid, included in edges.items():
                if rid not in affected and affected.intersection(included):
                    affected.add(rid)
                    grew = True
        return await self._store.holders(org_id, affected)

    async def update_role(
        self,
        org_id: str,
        ref: str,
        *,
        name: str | None = None,
        description: str | None = None,
        permissions: Iterable[str] | None = None,
        includes: Sequence[str] | None = None,
        actor: str | None,
    ) -> Role:
        role = await self.get_role(org_id, ref)
        if role.builtin:
            raise InvalidInput(f"the built-in role {role.name!r} cannot be changed")
        changed = role
        if name is not None:
            changed = replace(changed, name=_role_name(name))
        if description is not None:
            if len(description) > 500:
                raise InvalidInput("description must be at most 500 characters")
            changed = replace(changed, description=description)
        if permissions is not None:
            changed = replace(changed, permissions=_check_permissions(permissions))
        if includes is not None:
            # Include edits take turns per organization: two concurrent edits, each adding
            # one half of a cycle, would both pass a check made on the graph before the other.
            await self._orgs.lock(org_id)
            included = await self._includes(org_id, includes, role.project_id)
            await self._refuse_cycle(org_id, role.id, included)
            changed = replace(changed, includes=included)
        changed = replace(changed, updated_at=self._clock.now())
        if not await self._store.update_role(changed):
            raise Conflict(f"a role named {changed.name!r} exists")
        if (
            changed.permissions != role.permissions
            or changed.includes != role.includes
            or changed.name != role.name  # policies name roles: Role::"<name>" (issue 13)
        ):
            await self._touched(org_id, await self._affected_by_role(org_id, role.id))
        self._permissions.changed = True
        await self._audit.org_change(
            "rbac.role.update",
            org_id,
            actor,
            role.id,
            name=changed.name,
            permissions=sorted(changed.permissions),
            includes=list(changed.includes),
        )
        return changed

    async def delete_role(self, org_id: str, ref: str, *, actor: str | None) -> None:
        """Delete a custom role with its assignments and the includes naming it; whoever
        held it (directly, via a group, via an including role) is recomputed."""
        role = await self.get_role(org_id, ref)
        if role.builtin:
            raise InvalidInput(f"the built-in role {role.name!r} cannot be deleted")
        affected = await self._affected_by_role(org_id, role.id)
        await self._store.delete_role(org_id, role.id)
        await self._touched(org_id, affected)
        await self._audit.org_change("rbac.role.delete", org_id, actor, role.id, name=role.name)

    # -- assignments -----------------------------------------------------------------------

    async def _check_principal(self, org_id: str, principal: Principal) -> None:
        kind, principal_id = principal
        if kind not in PRINCIPAL_TYPES:
            raise InvalidInput(f"principal type must be one of {', '.join(PRINCIPAL_TYPES)}")
        if kind == "user":
            await self._orgs.require_member(org_id, principal_id)
        elif kind == "group" and await self._store.get_group(org_id, principal_id) is None:
            raise NotFound("no such group")

    async def _scope(self, org_id: str, role: Role, project: str | None) -> str | None:
        project_id = (await self._orgs.get_project(org_id, project)).id if project else None
        if role.project_id is not None and role.project_id != project_id:
            raise InvalidInput(f"role {role.name!r} can be assigned only in its project")
        return project_id

    async def assign(
        self,
        org_id: str,
        principal: Principal,
        role_ref: str,
        *,
        project_id: str | None = None,
        actor: str | None,
    ) -> Assignment:
        await self._check_principal(org_id, principal)
        role = await self.get_role(org_id, role_ref, project_id=project_id)
        scope = await self._scope(org_id, role, project_id)
        assignment = Assignment(
            org_id, principal[0], principal[1], role.id, scope, self._clock.now()
        )
        if not await self._store.add_assignment(assignment):
            raise Conflict(f"already assigned {role.name!r}")
        await self._touched(org_id, [principal])
        await self._audit.org_change(
            "rbac.assignment.add",
            org_id,
            actor,
            principal[1],
            principal_type=principal[0],
            role=role.id,
            project_id=scope,
        )
        return assignment

    async def _refuse_last_owner(self, org_id: str, user_id: str) -> None:
        """``last_owner`` if the user is an owner of the organization and the only one."""
        held = await self._store.assignments_of(org_id, [("user", user_id)])
        if not any(a.role == OWNER and a.project_id is None for a in held):
            return
        if await self._store.count_owners(org_id, OWNER) <= 1:
            raise LastOwner("the organization must keep at least one owner")

    async def unassign(
        self,
        org_id: str,
        principal: Principal,
        role_ref: str,
        *,
        project_id: str | None = None,
        actor: str | None,
    ) -> None:
        role = await self.get_role(org_id, role_ref, project_id=project_id)
        scope = await self._scope(org_id, role, project_id)
        if role.id == OWNER and scope is None and principal[0] == "user":
            await self._orgs.lock(org_id)
            await self._refuse_last_owner(org_id, principal[1])
        if not await self._store.remove_assignment(org_id, principal, role.id, scope):
            raise NotFound(f"{role.name!r} is not assigned")
        await self._touched(org_id, [principal])
        await self._audit.org_change(
            "rbac.assignment.remove",
            org_id,
            actor,
            principal[1],
            principal_type=principal[0],
            role=role.id,
            project_id=scope,
        )

    async def set_roles(
        self,
        org_id: str,
        principal: Principal,
        role_refs: Sequence[str],
        *,
        project_id: str | None = None,
        actor: str | None,
    ) -> list[Assignment]:
        """Make ``role_refs`` exactly the principal's direct roles at this level (the
        organization, or one project)."""
        await self._orgs.lock(org_id)
        await self._check_principal(org_id, principal)
        wanted: dict[str, Role] = {}
        for ref in role_refs:
            role = await self.get_role(org_id, ref, project_id=project_id)
            wanted[role.id] = role
        scope = None
        for role in wanted.values():
            scope = await self._scope(org_id, role, project_id)
        if project_id is not None and not wanted:
            scope = (await self._orgs.get_project(org_id, project_id)).id
        held = [
            a
            for a in await self._store.assignments_of(org_id, [principal])
            if a.project_id == scope
        ]
        current = {a.role for a in held}
        if principal[0] == "user" and scope is None and OWNER not in wanted:
            await self._refuse_last_owner(org_id, principal[1])
        now = self._clock.now()
        for role_id in current - wanted.keys():
            await self._store.remove_assignment(org_id, principal, role_id, scope)
        for role_id in wanted.keys() - current:
            await self._store.add_assignment(
                Assignment(org_id, principal[0], principal[1], role_id, scope, now)
            )
        if current != wanted.keys():
            await self._touched(org_id, [principal])
            await self._audit.org_change(
                "rbac.assignment.set",
                org_id,
                actor,
                principal[1],
                principal_type=principal[0],
                roles=sorted(wanted),
                project_id=scope,
            )
        return [
            a
            for a in await self._store.assignments_of(org_id, [principal])
            if a.project_id == scope
        ]

    async def assignments_of(self, org_id: str, principal: Principal) -> list[Assignment]:
        return await self._store.assignments_of(org_id, [principal])

    async def member_leaving(self, org_id: str, user_id: str, *, actor: str | None) -> None:
        """orgs.MembershipListener: called under the organization's lock."""
        await self._refuse_last_owner(org_id, user_id)
        removed = await self._store.remove_assignments_of(org_id, ("user", user_id))
        left = await self._store.remove_user_from_groups(org_id, user_id)
        await self._touched(org_id, [("user", user_id)])
        await self._audit.org_change(
            "rbac.member.cleared",
            org_id,
            actor,
            user_id,
            assignments=removed,
            group_memberships=left,
        )

    async def principal_removed(
        self, org_id: str, principal: Principal, *, actor: str | None
    ) -> int:
        """A non-user principal (a deleted service account) goes: its role assignments are
        dropped and its cached permissions forgotten on every node. Users leave through
        :meth:`member_leaving`, which keeps the last-owner rule."""
        if principal[0] == "user":
            raise InvalidInput("a user leaves the organization as a member")
        removed = await self._store.remove_assignments_of(org_id, principal)
        await self._touched(org_id, [principal])
        await self._audit.org_change(
            "rbac.principal.cleared",
            org_id,
            actor,
            principal[1],
            principal_type=principal[0],
            assignments=removed,
        )
        return removed

    async def project_deleting(self, org_id: str, project_id: str, *, actor: str | None) -> None:
        """orgs.MembershipListener: a project's roles and the assignments made in it go with
        it; whoever held them is recomputed."""
        affected = await self._store.drop_project(org_id, project_id)
        await self._touched(org_id, affected)
        await self._audit.org_change(
            "rbac.project.cleared", org_id, actor, project_id, principals=len(affected)
        )

    async def organization_deleting(self, org_id: str, *, actor: str | None) -> None:
        """orgs.MembershipListener: every cached permission of the organization goes."""
        await self._touched(org_id, None)

    # -- what listings and authorization need in bulk ---------------------------------------

    async def assignments_of_many(
        self, org_id: str, principals: Collection[Principal]
    ) -> list[Assignment]:
        """The direct assignments of many principals, in one query."""
        return await self._store.assignments_of(org_id, principals)

    async def groups_of_users(
        self, org_id: str, user_ids: Collection[str]
    ) -> dict[str, list[Group]]:
        """Each user's groups by name, in one query."""
        found: dict[str, list[Group]] = {user_id: [] for user_id in user_ids}
        for user_id, group in await self._store.groups_of_users(org_id, user_ids):
            found.setdefault(user_id, []).append(group)
        return found

    async def roles_by_id(self, org_id: str, role_ids: Collection[str]) -> dict[str, Role]:
        """Built-in and custom roles by id (unknown ids are left out), in one query."""
        found = {rid: _builtin(org_id, rid) for rid in role_ids if rid in BUILTIN_ROLES}
        custom = [rid for rid in role_ids if rid not in BUILTIN_ROLES]
        for role in await self._store.get_roles(org_id, custom):
            found[role.id] = role
        return found

    async def permissions_of_roles(self, org_id: str, role_ids: Collection[str]) -> frozenset[str]:
        """What holding every role of ``role_ids`` grants, includes expanded (``*`` kept)."""
        if not role_ids:
            return frozenset()
        own, includes = await self._store.role_graph(org_id)
        return perms.expand(role_ids, {**own, **BUILTIN_ROLES}, includes)

    async def permissions_granted_by(
        self,
        org_id: str,
        *,
        permissions: Iterable[str] = (),
        includes: Sequence[str] = (),
        project_id: str | None = None,
    ) -> frozenset[str]:
        """What a role with these own permissions and includes would grant (validated as
        :meth:`create_role` would), for escalation checks made before the change."""
        granted = set(_check_permissions(permissions))
        if includes:
            resolved = [
                (await self.get_role(org_id, ref, project_id=project_id)).id for ref in includes
            ]
            granted |= await self.permissions_of_roles(org_id, resolved)
        return frozenset(granted)

    # -- groups ----------------------------------------------------------------------------

    async def create_group(
        self,
        org_id: str,
        name: str,
        *,
        roles: Sequence[str] = (),
        actor: str | None,
    ) -> Group:
        await self._orgs.get(org_id)
        name = check_name(name, "group name", 100)
        resolved = [await self.get_role(org_id, ref) for ref in roles]
        for role in resolved:
            if role.project_id is not None:
                raise InvalidInput(f"role {role.name!r} can be assigned only in its project")
        group = Group(str(uuid.uuid4()), org_id, name, self._clock.now())
        if not await self._store.add_group(group):
            raise Conflict(f"a group named {name!r} exists")
        for role in resolved:
            await self._store.add_assignment(
                Assignment(org_id, "group", group.id, role.id, None, group.created_at)
            )
        self._permissions.changed = True
        await self._audit.org_change(
            "rbac.group.create",
            org_id,
            actor,
            group.id,
            name=name,
            roles=[r.id for r in resolved],
        )
        return group

    async def delete_group(self, org_id: str, ref: str, *, actor: str | None) -> None:
        """Delete a group with its memberships and role assignments; its members are
        recomputed."""
        group = await self.get_group(org_id, ref)
        members = await self._store.group_members(org_id, group.id)
        await self._store.delete_group(org_id, group.id)
        await self._touched(org_id, [("user", user_id) for user_id in members])
        await self._audit.org_change("rbac.group.delete", org_id, actor, group.id, name=group.name)

    async def get_group(self, org_id: str, ref: str) -> Group:
        group = await self._store.get_group(org_id, ref) if len(ref) <= 36 else None
        if group is None and len(ref) <= 100:
            group = await self._store.get_group_by_name(org_id, ref)
        if group is None:
            raise NotFound("no such group")
        return group

    async def list_groups(
        self, org_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Group], str | None]:
        await self._orgs.get(org_id)
        rows = await self._store.list_groups(org_id, _limit(limit) + 1, decode_cursor(cursor))
        return _page(rows, limit)

    async def group_members(self, org_id: str, group_ref: str) -> list[str]:
        group = await self.get_group(org_id, group_ref)
        return await self._store.group_members(org_id, group.id)

    async def groups_of(self, org_id: str, user_id: str) -> list[Group]:
        found = []
        for group_id in await self._store.groups_of_user(org_id, user_id):
            group = await self._store.get_group(org_id, group_id)
            if group is not None:
                found.append(group)
        return sorted(found, key=lambda g: g.name)

    async def add_group_member(
        self, org_id: str, group_ref: str, user_id: str, *, actor: str | None
    ) -> None:
        group = await self.get_group(org_id, group_ref)
        await self._orgs.require_member(org_id, user_id)
        if not await self._store.add_group_member(org_id, group.id, user_id):
            raise Conflict("already in the group")
        await self._touched(org_id, [("user", user_id)])
        await self._audit.org_change(
            "rbac.group.member.add", org_id, actor, user_id, group_id=group.id
        )

    async def remove_group_member(
        self, org_id: str, group_ref: str, user_id: str, *, actor: str | None
    ) -> None:
        group = await self.get_group(org_id, group_ref)
        if not await self._store.remove_group_member(org_id, group.id, user_id):
            raise NotFound("not in the group")
        await self._touched(org_id, [("user", user_id)])
        await self._audit.org_change(
            "rbac.group.member.remove", org_id, actor, user_id, group_id=group.id
        )

    # -- effective permissions -------------------------------------------------------------

    async def effective_permissions(
        self,
        org_id: str,
        principal_type: PrincipalType,
        principal_id: str,
        project_id: str | None = None,
    ) -> frozenset[str]:
        """:meth:`EffectivePermissions.effective_permissions`, through the unit's reader."""
        return await self._permissions.effective_permissions(
            org_id, principal_type, principal_id, project_id
        )

    async def require(
        self,
        org_id: str,
        principal: Principal,
        permission: str,
        *,
        project_id: str | None = None,
    ) -> None:
        """Authorization for the management API: ``forbidden`` unless the principal holds
        ``permission`` here. (The CLI acts as the operator and does not call it.)"""
        held = await self.effective_permissions(org_id, principal[0], principal[1], project_id)
        if not allows(held, permission):
            raise Forbidden(f"this needs the permission {permission!r}")
