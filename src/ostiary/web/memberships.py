"""What the account pages show of a user's organizations (web/routes/organizations.py and
/account)."""

from __future__ import annotations

from typing import Any

from ostiary.features.orgs.models import NotFound
from ostiary.features.rbac.service import allows
from ostiary.web.runtime import Unit

__all__ = ["org_rows"]


async def org_rows(unit: Unit, user_id: str) -> list[dict[str, Any]]:
    """The user's organizations, by name, with their role names there and which is active."""
    mine = await unit.orgs.orgs_of(user_id)
    if not mine:
        return []
    active = await unit.orgs.active_org(user_id)
    rows = []
    for org in mine:
        names = []
        for assignment in await unit.rbac.assignments_of(org.id, ("user", user_id)):
            try:
                role = await unit.rbac.get_role(org.id, assignment.role)
            except NotFound:
                continue
            names.append(role.name if assignment.project_id is None else f"{role.name} (project)")
        rows.append(
            {
                "org": org,
                "roles": sorted(set(names)),
                "active": active is not None and active.id == org.id,
                "can_invite": allows(
                    await unit.rbac.effective_permissions(org.id, "user", user_id),
                    "members:manage",
                ),
            }
        )
    return rows
