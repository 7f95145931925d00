"""The organization claims of an org-scoped client's tokens (issue 12, section 1; README
"Org-scoped clients"): ``org_id``; with the ``roles`` scope, ``org_roles`` (the names of the
organization-level roles the user holds, directly or through a group) and ``permissions``
(the effective organization-level permissions, from the per-node cache of rbac/cache.py, with
the ``*`` of owners expanded to the full list so that a resource server need not know the
wildcard). These are private claims in the sense of RFC 7519 section 4.3, collision-resistant
by their names; RFC 9068 section 2.2.3.1 describes ``roles`` and ``entitlements`` for SCIM
attributes, which these are not."""

from __future__ import annotations

from typing import Any

from ostiary.features.orgs.models import NotFound
from ostiary.features.orgs.service import OrgService
from ostiary.features.rbac.service import RbacService
from ostiary.protocol import permissions as perms
from ostiary.protocol.oidc import acr_for, acr_meets

__all__ = ["OrgClaims"]


class OrgClaims:
    def __init__(self, orgs: OrgService, rbac: RbacService) -> None:
        self._orgs = orgs
        self._rbac = rbac

    async def org_claims(
        self, org_id: str, user_id: str, *, roles: bool, amr: list[str]
    ) -> dict[str, Any] | None:
        if not await self._orgs.is_member(org_id, user_id):
            return None
        try:
            org = await self._orgs.get(org_id)
        except NotFound:
            return None
        if org.require_acr and not acr_meets(acr_for(amr), org.require_acr):
            return None
        claims: dict[str, Any] = {"org_id": org.id}
        if not roles:
            return claims
        held = await self._rbac.assignments_of(org.id, ("user", user_id))
        for group in await self._rbac.groups_of(org.id, user_id):
            held.extend(await self._rbac.assignments_of(org.id, ("group", group.id)))
        names: set[str] = set()
        for assignment in held:
            if assignment.project_id is not None:
                continue
            try:
                names.add((await self._rbac.get_role(org.id, assignment.role)).name)
            except NotFound:  # deleted meanwhile
                continue
        effective = await self._rbac.effective_permissions(org.id, "user", user_id)
        claims["org_roles"] = sorted(names)
        claims["permissions"] = sorted(perms.PERMISSIONS if perms.ALL in effective else effective)
        return claims
