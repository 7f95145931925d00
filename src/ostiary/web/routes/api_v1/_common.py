"""What the management API's endpoint groups share: rendering role assignments and members in
bulk (a fixed number of queries per page, whatever its size)."""

from __future__ import annotations

from collections.abc import Sequence

from ostiary.features.orgs.models import Membership
from ostiary.features.rbac.models import Assignment
from ostiary.web.management import OrgCall
from ostiary.web.routes.api_v1.schemas import GroupBrief, MemberOut, RoleGrant

__all__ = ["grants", "member_rows"]


async def grants(call: OrgCall, assignments: Sequence[Assignment]) -> dict[str, list[RoleGrant]]:
    """Each principal's direct roles, by principal id (role names in one query)."""
    roles = await call.unit.rbac.roles_by_id(call.org.id, {a.role for a in assignments})
    found: dict[str, list[RoleGrant]] = {}
    for a in assignments:
        role = roles.get(a.role)
        name = role.name if role is not None else a.role
        found.setdefault(a.principal_id, []).append(
            RoleGrant(role=name, role_id=a.role, project_id=a.project_id)
        )
    return found


async def member_rows(call: OrgCall, memberships: Sequence[Membership]) -> list[MemberOut]:
    """Members with their users, direct roles and groups: four queries for the whole page."""
    org_id = call.org.id
    user_ids = [m.user_id for m in memberships]
    users = await call.unit.accounts.get_many(user_ids)
    held = await call.unit.rbac.assignments_of_many(org_id, [("user", u) for u in user_ids])
    by_user = await grants(call, held)
    groups = await call.unit.rbac.groups_of_users(org_id, user_ids)
    rows = []
    for membership in memberships:
        user = users.get(membership.user_id)
        if user is None:  # deleted meanwhile: the membership row goes with it
            continue
        rows.append(
            MemberOut(
                user_id=user.id,
                email=user.email,
                name=user.name,
                joined_at=membership.created_at,
                roles=by_user.get(user.id, []),
                groups=[GroupBrief(id=g.id, name=g.name) for g in groups.get(user.id, [])],
            )
        )
    return rows
