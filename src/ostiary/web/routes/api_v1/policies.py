"""/api/v1/orgs/{org}/policies (issue 13, section 2, over HTTP): an organization's Cedar
policies for its own administrators, who may not have the operator's command line.

What the CLI's ``ostiary policies`` does for one organization (features/policy/service.py):
the active version and the deployment-wide version that applies with it; the versions, newest
first, paged with a signed cursor; one version with its texts; a new version (validated against
Ostiary's schema with the organization's extension before it is saved: a refusal is a 422
``invalid_policy`` with Cedar's message and the line); a dry-run of a candidate against the
recent decision log; a rollback, saved as the next version. Reading needs ``policies:read``;
setting, dry-runs (they replay logged requests) and rollbacks need ``policies:manage``, which
the built-in ``admin`` holds. Deployment-wide policies stay the operator's (``ostiary policies
set '*'``); their text is not shown here, only which version applies.

A Cedar ``permit`` decides AuthZEN questions only: Ostiary's own API (this one included) checks
RBAC permissions, so a policy cannot give its author more power here than their roles do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ostiary.features.policy.models import PolicyVersion
from ostiary.features.policy.service import MAX_POLICY_TEXT, MAX_SCHEMA_TEXT, DryRunChange
from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1.schemas import (
    TEXT_PATTERN,
    CursorQuery,
    LimitQuery,
    OrgRef,
    Page,
    _In,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["policies"])

_EXAMPLE_POLICY = 'permit (principal, action == Action::"models:read", resource);'

VersionRef = Annotated[int, Path(description="Policy version number.", ge=1, le=2**31 - 1)]
PolicyText = Annotated[
    str,
    Field(
        max_length=MAX_POLICY_TEXT,
        pattern=TEXT_PATTERN,
        description="Cedar policies (https://docs.cedarpolicy.com, policy syntax).",
        examples=[_EXAMPLE_POLICY],
    ),
]
SchemaText = Annotated[
    str,
    Field(
        alias="schema",
        max_length=MAX_SCHEMA_TEXT,
        pattern=TEXT_PATTERN,
        description="The organization's extension of Ostiary's Cedar schema (Cedar schema "
        "syntax): a declaration of the same name replaces Ostiary's, anything else is added.",
    ),
]


class PoliciesSet(_In):
    policies: PolicyText
    schema_text: SchemaText = ""
    note: Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN)] = ""


class PoliciesDryRun(_In):
    policies: PolicyText
    schema_text: SchemaText = ""
    limit: Annotated[int, Field(ge=1, le=10_000, description="Logged decisions to replay.")] = 1000


class PoliciesRollback(_In):
    version: Annotated[int, Field(ge=1, le=2**31 - 1, description="The version to restore.")]


class PolicyVersionOut(BaseModel):
    version: int
    note: str
    created_by: str | None = Field(description="A user id, key:<id>, or null (the operator).")
    created_at: datetime

    @classmethod
    def of(cls, found: PolicyVersion) -> PolicyVersionOut:
        return cls(
            version=found.version,
            note=found.note,
            created_by=found.actor,
            created_at=found.created_at,
        )


class PolicyVersionText(PolicyVersionOut):
    model_config = ConfigDict(populate_by_name=True)

    policies: str
    schema_text: str = Field(alias="schema", description="The schema extension.")

    @classmethod
    def of(cls, found: PolicyVersion) -> PolicyVersionText:
        return cls(
            version=found.version,
            note=found.note,
            created_by=found.actor,
            created_at=found.created_at,
            policies=found.policies,
            schema_text=found.schema,
        )


class ActivePolicies(BaseModel):
    active: PolicyVersionText | None = Field(description="null: the organization has none.")
    deployment_version: int | None = Field(
        description="The deployment-wide policies' active version, evaluated with these "
        "(null: none)."
    )


class DryRunChangeOut(BaseModel):
    decision_id: int = Field(description="0: a decision of this node not written yet.")
    at: datetime
    subject: dict[str, Any] | None
    action: str | None
    resource: dict[str, Any] | None
    was: bool
    would_be: bool
    reason: str = Field(description="Why the candidate decides so (reason_admin).")

    @classmethod
    def of(cls, change: DryRunChange) -> DryRunChangeOut:
        request = change.logged.request
        action = request.get("action")
        return cls(
            decision_id=change.logged.id,
            at=change.logged.at,
            subject=request.get("subject"),
            action=action.get("name") if isinstance(action, dict) else None,
            resource=request.get("resource"),
            was=change.logged.decision,
            would_be=change.now_allowed,
            reason=change.reason,
        )


class DryRunOut(BaseModel):
    replayed: int = Field(description="Logged decisions evaluated again.")
    changed: int
    changes: list[DryRunChangeOut]


@router.get(
    "/orgs/{org}/policies",
    summary="The organization's active Cedar policies (policies:read)",
    responses=errors(403, 404),
)
async def show_policies(request: Request, org: OrgRef) -> ActivePolicies:
    async def work(call: OrgCall) -> ActivePolicies:
        await call.require("policies:read")
        policies = call.unit.policies
        active = await policies.active(call.org.id)
        shared = await policies.active(None)
        return ActivePolicies(
            active=PolicyVersionText.of(active) if active is not None else None,
            deployment_version=shared.version if shared is not None else None,
        )

    return await in_org(request, org, "api.policies.show", work, change=False)


@router.put(
    "/orgs/{org}/policies",
    summary="Validate Cedar policies and make them the active version (policies:manage)",
    responses=errors(403, 404, 409),
)
async def set_policies(request: Request, org: OrgRef, body: PoliciesSet) -> PolicyVersionOut:
    async def work(call: OrgCall) -> PolicyVersionOut:
        await call.require("policies:manage")
        saved = await call.unit.policies.set(
            call.org.id, body.policies, body.schema_text, note=body.note, actor=call.actor
        )
        return PolicyVersionOut.of(saved)

    return await in_org(request, org, "api.policies.set", work)


@router.get(
    "/orgs/{org}/policies/versions",
    summary="The organization's policy versions, newest first (policies:read)",
    responses=errors(400, 403, 404),
)
async def list_policy_versions(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[PolicyVersionOut]:
    async def work(call: OrgCall) -> Page[PolicyVersionOut]:
        await call.require("policies:read")
        before = call.open_before("policy-versions", cursor)
        found = await call.unit.policies.versions(call.org.id, limit, before)
        return Page[PolicyVersionOut](
            items=[PolicyVersionOut.of(v) for v in found],
            next_cursor=call.seal_before("policy-versions", [v.version for v in found], limit),
        )

    return await in_org(request, org, "api.policies.versions", work, change=False)


@router.get(
    "/orgs/{org}/policies/versions/{version}",
    summary="One policy version with its texts (policies:read)",
    responses=errors(403, 404),
)
async def show_policy_version(
    request: Request, org: OrgRef, version: VersionRef
) -> PolicyVersionText:
    async def work(call: OrgCall) -> PolicyVersionText:
        await call.require("policies:read")
        return PolicyVersionText.of(await call.unit.policies.version(call.org.id, version))

    return await in_org(request, org, "api.policies.version", work, change=False)


@router.post(
    "/orgs/{org}/policies/dry-run",
    summary="Which recent logged decisions candidate policies would change (policies:manage)",
    responses=errors(403, 404),
)
async def dry_run_policies(request: Request, org: OrgRef, body: PoliciesDryRun) -> DryRunOut:
    async def work(call: OrgCall) -> DryRunOut:
        await call.require("policies:manage")
        replayed, changes = await call.unit.policies.dry_run(
            call.org.id, body.policies, body.schema_text, limit=body.limit
        )
        items = [DryRunChangeOut.of(c) for c in changes]
        return DryRunOut(replayed=replayed, changed=len(items), changes=items)

    return await in_org(request, org, "api.policies.dry_run", work, change=False)


@router.post(
    "/orgs/{org}/policies/rollback",
    summary="Make an earlier version active again, saved as the next one (policies:manage)",
    responses=errors(403, 404, 409),
)
async def rollback_policies(
    request: Request, org: OrgRef, body: PoliciesRollback
) -> PolicyVersionOut:
    async def work(call: OrgCall) -> PolicyVersionOut:
        await call.require("policies:manage")
        saved = await call.unit.policies.rollback(call.org.id, body.version, actor=call.actor)
        return PolicyVersionOut.of(saved)

    return await in_org(request, org, "api.policies.rollback", work)
