"""Organizations, projects and memberships (issue 12, section 1; ARCHITECTURE.md "Tenancy
model").

- An organization has a display name and a unique slug (protocol/permissions.py ``is_slug``:
  the DNS label rule of RFC 1035 section 2.3.1), derived from the name when not given and then
  made unique with a numeric suffix; ORG arguments accept an id or a slug.
- Every lookup of an org-owned object takes the organization id and is scoped by it: another
  organization's object is ``not_found``, never told apart from an absent one.
- Every change is audited with its actor (a user id, or None for the CLI operator) and the
  organization in the details; listings page by an opaque keyset cursor on (created_at, id).
- A member leaves through :class:`MembershipListener` (RBAC drops their assignments and group
  memberships, refusing to remove the last owner) under a lock of the organization's row, so
  that two concurrent removals of the last two owners cannot both succeed.
- ``resolve`` (id or slug) answers from a per-node cache (features/orgs/cache.py) when given
  one; every update or deletion of an organization tells the ``OrgInvalidator``, which fans it
  out to every node. A unit that changed an organization reads past the cache.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from dataclasses import replace
from typing import TypeVar

from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.orgs.cache import OrgCache
from ostiary.features.orgs.models import (
    Conflict,
    InvalidInput,
    Membership,
    NotAMember,
    NotFound,
    Organization,
    Project,
    decode_cursor,
    encode_cursor,
)
from ostiary.features.orgs.ports import MembershipListener, OrgInvalidator, OrgStore
from ostiary.protocol.oidc import ACR_VALUES_SUPPORTED
from ostiary.protocol.permissions import derive_slug, is_slug

__all__ = ["MAX_PAGE", "UNCHANGED", "OrgService", "Unchanged", "check_name", "check_plan"]


class Unchanged:
    """The default of an optional field an update leaves as it is."""


UNCHANGED = Unchanged()

MAX_PAGE = 500
_SLUG_TRIES = 20
_T = TypeVar("_T", Organization, Project, Membership)


_PLAN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_plan(plan: str) -> str:
    """A plan name as policies compare it: 1-64 letters, digits, ``.``, ``_``, ``-``."""
    if not _PLAN.fullmatch(plan):
        raise InvalidInput(
            "plan must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return plan


def check_name(value: str, what: str, limit: int = 200) -> str:
    """A display name: trimmed, 1..limit characters, no control characters."""
    name = value.strip()
    if not name or len(name) > limit:
        raise InvalidInput(f"{what} must be 1 to {limit} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput(f"{what} must not contain control characters")
    return name


def _check_slug(slug: str) -> str:
    if not is_slug(slug):
        raise InvalidInput(
            "slug must be 2 to 63 characters of a-z, 0-9 and hyphens, "
            "not starting or ending with a hyphen"
        )
    return slug


def _page(items: list[_T], limit: int) -> tuple[list[_T], str | None]:
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    key = last.user_id if isinstance(last, Membership) else last.id
    return items, encode_cursor(last.created_at, key)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
    return limit


class OrgService:
    def __init__(
        self,
        store: OrgStore,
        audit: AuditTrail,
        clock: Clock,
        *,
        listener: MembershipListener | None = None,
        cache: OrgCache | None = None,
        invalidator: OrgInvalidator | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._listener = listener
        self._cache = cache
        self._invalidator = invalidator
        self._changed = False  # reads of this unit may see its own uncommitted writes

    # -- organizations ---------------------------------------------------------------------

    async def create(
        self, name: str, *, slug: str | None = None, actor: str | None
    ) -> Organization:
        name = check_name(name, "name")
        now = self._clock.now()
        candidates: list[str]
        if slug is not None:
            candidates = [_check_slug(slug)]
        else:
            base = derive_slug(name)
            stem = base[:56].rstrip("-")
            candidates = [base, *(f"{stem}-{n}" for n in range(2, _SLUG_TRIES))]
            candidates.append(f"{stem}-{secrets.token_hex(3)}")  # crowded: a random suffix
        for candidate in candidates:
            org = Organization(str(uuid.uuid4()), candidate, name, now, now)
            if await self._store.add_org(org):
                await self._audit.org_change("org.create", org.id, actor, org.id, slug=org.slug)
                return org
        raise Conflict(f"the slug {candidates[0]!r} is taken")

    async def get(self, org_id: str) -> Organization:
        org = await self._store.get_org(org_id)
        if org is None:
            raise NotFound("no such organization")
        return org

    async def resolve(self, ref: str) -> Organization:
        """An organization by id or by slug (cached per node, features/orgs/cache.py)."""
        cache = None if self._changed else self._cache
        if cache is not None:
            found = cache.get(ref)
            if found is not None:
                return found
            stamp = cache.stamp()
        org = await self._store.get_org(ref) if len(ref) <= 36 else None
        if org is None and is_slug(ref):
            org = await self._store.get_org_by_slug(ref)
        if org is None:
            raise NotFound("no such organization")
        if cache is not None:
            cache.put(ref, org, stamp)
        return org

    async def _org_changed(self, org_id: str) -> None:
        self._changed = True
        if self._invalidator is not None:
            await self._invalidator.organization_changed(org_id)

    async def list_orgs(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Organization], str | None]:
        items = await self._store.list_orgs(_limit(limit) + 1, decode_cursor(cursor))
        return _page(items, limit)

    async def list_orgs_of_user(
        self, user_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Organization], str | None]:
        """The organizations a user belongs to, oldest first."""
        after = decode_cursor(cursor)
        items = await self._store.list_orgs_of_user(user_id, _limit(limit) + 1, after)
        return _page(items, limit)

    async def update(
        self,
        org_id: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        require_acr: str | Unchanged | None = UNCHANGED,
        plan: str | Unchanged | None = UNCHANGED,
        actor: str | None,
    ) -> Organization:
        """Rename, change the slug, set the acr class its members' sign-ins must reach for
        org-scoped clients (protocol/oidc.py ``ACR_VALUES_SUPPORTED``; None: no requirement),
        or set its plan (:func:`check_plan`; None: none). The plan is the operator's to set:
        callers acting for the organization (the management API) do not offer it."""
        org = await self.get(org_id)
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = check_name(name, "name")
        if slug is not None:
            changes["slug"] = _check_slug(slug)
        if not isinstance(require_acr, Unchanged):
            if require_acr is not None and require_acr not in ACR_VALUES_SUPPORTED:
                raise InvalidInput(
                    f"require_acr must be one of {', '.join(ACR_VALUES_SUPPORTED)} or none"
                )
            changes["require_acr"] = require_acr
        if not isinstance(plan, Unchanged):
            changes["plan"] = None if plan is None else check_plan(plan)
        changed = replace(org, **changes)  # type: ignore[arg-type]
        if changed == org:
            return org
        changed = replace(changed, updated_at=self._clock.now())
        if not await self._store.update_org(changed):
            raise Conflict(f"the slug {changed.slug!r} is taken")
        await self._org_changed(org_id)
        await self._audit.org_change("org.update", org_id, actor, org_id, **changes)
        return changed

    async def delete(self, org_id: str, *, actor: str | None) -> None:
        """Delete the organization and everything it owns: projects, memberships, roles,
        groups, assignments (and, through the same foreign keys, what later features attach
        to it). Users stay (they are global); the audit trail keeps its events."""
        await self.lock(org_id)
        org = await self.get(org_id)
        if self._listener is not None:
            await self._listener.organization_deleting(org_id, actor=actor)
        await self._store.delete_org(org_id)
        await self._org_changed(org_id)
        await self._audit.org_change("org.delete", org_id, actor, org_id, slug=org.slug)

    async def lock(self, org_id: str) -> None:
        if not await self._store.lock_org(org_id):
            raise NotFound("no such organization")

    # -- projects --------------------------------------------------------------------------

    async def create_project(
        self, org_id: str, name: str, *, slug: str | None = None, actor: str | None
    ) -> Project:
        await self.get(org_id)
        name = check_name(name, "name")
        chosen = _check_slug(slug) if slug is not None else derive_slug(name)
        project = Project(str(uuid.uuid4()), org_id, chosen, name, self._clock.now())
        if not await self._store.add_project(project):
            raise Conflict(f"the organization has a project with the slug {chosen!r}")
        await self._audit.org_change(
            "org.project.create", org_id, actor, project.id, slug=project.slug
        )
        return project

    async def get_project(self, org_id: str, ref: str) -> Project:
        """A project of this organization by id or slug; another organization's is not
        found."""
        project = await self._store.get_project(org_id, ref) if len(ref) <= 36 else None
        if project is None and is_slug(ref):
            project = await self._store.get_project_by_slug(org_id, ref)
        if project is None:
            raise NotFound("no such project")
        return project

    async def list_projects(
        self, org_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Project], str | None]:
        await self.get(org_id)
        items = await self._store.list_projects(org_id, _limit(limit) + 1, decode_cursor(cursor))
        return _page(items, limit)

    async def update_project(
        self,
        org_id: str,
        ref: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        actor: str | None,
    ) -> Project:
        project = await self.get_project(org_id, ref)
        changed = replace(
            project,
            name=check_name(name, "name") if name is not None else project.name,
            slug=_check_slug(slug) if slug is not None else project.slug,
        )
        if changed == project:
            return project
        if not await self._store.update_project(changed):
            raise Conflict(f"the organization has a project with the slug {changed.slug!r}")
        await self._audit.org_change(
            "org.project.update", org_id, actor, project.id, name=changed.name, slug=changed.slug
        )
        return changed

    async def delete_project(self, org_id: str, ref: str, *, actor: str | None) -> None:
        """Delete a project with its roles and the role assignments made in it."""
        project = await self.get_project(org_id, ref)
        if self._listener is not None:
            await self._listener.project_deleting(org_id, project.id, actor=actor)
        await self._store.delete_project(org_id, project.id)
        await self._audit.org_change(
            "org.project.delete", org_id, actor, project.id, slug=project.slug
        )

    # -- members ---------------------------------------------------------------------------

    async def add_member(self, org_id: str, user_id: str, *, actor: str | None) -> Membership:
        await self.get(org_id)
        membership = Membership(org_id, user_id, self._clock.now())
        outcome = await self._store.add_membership(membership)
        if outcome == "no_user":
            raise NotFound("no such user")
        if outcome == "exists":
            raise Conflict("already a member of the organization")
        await self._audit.org_change("org.member.add", org_id, actor, user_id)
        return membership

    async def is_member(self, org_id: str, user_id: str) -> bool:
        return await self._store.get_membership(org_id, user_id) is not None

    async def require_member(self, org_id: str, user_id: str) -> Membership:
        membership = await self._store.get_membership(org_id, user_id)
        if membership is None:
            raise NotAMember("not a member of the organization")
        return membership

    async def remove_member(self, org_id: str, user_id: str, *, actor: str | None) -> None:
        """Remove a member with their role assignments and group memberships in this
        organization; refused (``last_owner``) when they are its last owner."""
        await self.lock(org_id)
        await self.require_member(org_id, user_id)
        if self._listener is not None:
            await self._listener.member_leaving(org_id, user_id, actor=actor)
        await self._store.remove_membership(org_id, user_id)
        if await self._store.get_active_org(user_id) == org_id:
            await self._store.set_active_org(user_id, None, self._clock.now())
        await self._audit.org_change("org.member.remove", org_id, actor, user_id)

    # -- a user's own organizations --------------------------------------------------------

    async def orgs_of(self, user_id: str) -> list[Organization]:
        """The organizations the user belongs to, by name."""
        return await self._store.orgs_of_user(user_id)

    async def active_org(self, user_id: str) -> Organization | None:
        """The user's active organization: the one they chose while they are still a member
        of it; otherwise their only organization if they have exactly one; otherwise None
        (no choice to make on their behalf)."""
        chosen = await self._store.get_active_org(user_id)
        if chosen is not None and await self.is_member(chosen, user_id):
            return await self._store.get_org(chosen)
        mine = await self._store.orgs_of_user(user_id)
        return mine[0] if len(mine) == 1 else None

    async def set_active_org(self, user_id: str, org_id: str) -> Organization:
        """Choose the active organization: one the user is a member of (another is
        ``not_found``, never told apart from an absent one)."""
        if len(org_id) > 36 or not await self.is_member(org_id, user_id):
            raise NotFound("no such organization")
        org = await self.get(org_id)
        await self._store.set_active_org(user_id, org.id, self._clock.now())
        await self._audit.org_change("org.active.set", org.id, user_id, user_id)
        return org

    async def leave(self, org_id: str, user_id: str) -> None:
        """The user leaves the organization (``last_owner`` for its last owner)."""
        if len(org_id) > 36:
            raise NotAMember("not a member of the organization")
        await self.remove_member(org_id, user_id, actor=user_id)

    async def list_members(
        self, org_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Membership], str | None]:
        await self.get(org_id)
        after = decode_cursor(cursor)
        items = await self._store.list_memberships(org_id, _limit(limit) + 1, after)
        return _page(items, limit)
