"""The management API, mounted at /api/v1 (issue 12, section 4; web/management.py says who
may call it and how).

One module per endpoint group, each with its own ``router``; adding a group is one module and
one entry in :data:`GROUPS`. Every operation is documented as requiring the ``bearer`` scheme
(an access token with ``ostiary.manage``, or an API key), and the tenancy sweep
(tests/web/test_management_tenancy.py) covers every ``/api/v1/orgs/{org}/...`` operation of
the OpenAPI document without being edited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from ostiary.web.management import require_bearer
from ostiary.web.routes.api_v1 import (
    audit,
    groups,
    invitations,
    keys,
    members,
    models,
    orgs,
    policies,
    projects,
    roles,
)

__all__ = ["GROUPS", "PREFIX", "router"]

PREFIX = "/api/v1"
GROUPS: tuple[APIRouter, ...] = (
    orgs.router,
    projects.router,
    members.router,
    roles.router,
    groups.router,
    keys.router,
    invitations.router,
    models.router,
    policies.router,
    audit.router,
)

_SECURITY: dict[str, Any] = {"security": [{"bearer": []}]}

router = APIRouter(prefix=PREFIX, dependencies=[Depends(require_bearer)])
for _group in GROUPS:
    for _route in _group.routes:
        if isinstance(_route, APIRoute):
            _route.openapi_extra = {**_SECURITY, **(_route.openapi_extra or {})}
    router.include_router(_group)
