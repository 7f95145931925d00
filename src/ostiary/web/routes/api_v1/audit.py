"""/api/v1/orgs/{org}/audit-events and /decisions: an organization's slice of the audit trail
and its logged AuthZEN decisions, for holders of ``audit:read`` (the built-in ``admin`` and
``owner``).

Every change inside an organization, and every refused one, is filed under it with the actor
(features/audit: ``AuditTrail.record``); this lists those events newest first, filtered by
action, actor, outcome and time, paged with a signed cursor. Details were redacted when the
events were written (protocol/masking.py: no secrets, e-mail addresses masked), so nothing is
shown here that the trail does not already keep. The operator reads the whole trail with
``ostiary audit list`` and checks its hash chain with ``ostiary audit verify``.

Decisions (issue 13, section 3: "every decision can go to a decision log ... for audits") are
those the decision-log setting kept (``OSTIARY_DECISION_LOG``: full, sampled with every deny,
or off) for its retention: the request as evaluated (the subject by its resolved id, never the
e-mail address it was named by), the caller's address and authentication context, the
outcome and why; filtered by outcome and time, paged like the events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from ostiary.features.audit.models import AuditEvent, AuditQuery
from ostiary.features.policy.models import LoggedDecision
from ostiary.web.management import OrgCall, in_org
from ostiary.web.routes.api_v1.schemas import CursorQuery, LimitQuery, OrgRef, Page, errors

__all__ = ["router"]

router = APIRouter(tags=["audit"])

_NAME = r"^[^\x00-\x1f\x7f]+$"
ActionQuery = Annotated[
    str | None,
    Query(description="Only this action, e.g. api.role.create.", max_length=64, pattern=_NAME),
]
ActorQuery = Annotated[
    str | None,
    Query(description="Only this actor: a user id or key:<id>.", max_length=64, pattern=_NAME),
]
OutcomeQuery = Annotated[Literal["success", "failure"] | None, Query(description="Only these.")]
SinceQuery = Annotated[
    AwareDatetime | None, Query(description="At or after (RFC 3339, with its offset).")
]
UntilQuery = Annotated[
    AwareDatetime | None, Query(description="Before (RFC 3339, with its offset).")
]


class AuditEventOut(BaseModel):
    seq: int = Field(description="Position in the whole trail (the hash chain's order).")
    occurred_at: datetime
    action: str
    outcome: Literal["success", "failure"]
    actor: str | None = Field(description="A user id, key:<id>, or null (the operator).")
    target: str | None
    ip: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            seq=event.seq or 0,
            occurred_at=event.occurred_at,
            action=event.action,
            outcome=event.outcome,
            actor=event.actor,
            target=event.target,
            ip=event.ip,
            details=event.details,
        )


@router.get(
    "/orgs/{org}/audit-events",
    summary="The organization's audit events, newest first (audit:read)",
    responses=errors(400, 403, 404),
)
async def list_audit_events(
    request: Request,
    org: OrgRef,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    action: ActionQuery = None,
    actor: ActorQuery = None,
    outcome: OutcomeQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> Page[AuditEventOut]:
    async def work(call: OrgCall) -> Page[AuditEventOut]:
        await call.require("audit:read")
        query = AuditQuery(
            organization_id=call.org.id,
            before=call.open_before("audit-events", cursor),
            action=action,
            actor=actor,
            outcome=outcome,
            since=since,
            until=until,
        )
        found = await call.unit.audit.search(query, limit)
        return Page[AuditEventOut](
            items=[AuditEventOut.of(e) for e in found],
            next_cursor=call.seal_before("audit-events", [e.seq or 0 for e in found], limit),
        )

    return await in_org(request, org, "api.audit.list", work, change=False)


class DecisionOut(BaseModel):
    id: int
    at: datetime
    decision: bool
    reason: str = Field(description="Which policy decided, or which permission was missing.")
    subject: dict[str, Any]
    action: dict[str, Any]
    resource: dict[str, Any]
    context: dict[str, Any]
    caller: dict[str, Any] = Field(description="The caller's ip, acr and amr, as evaluated.")

    @classmethod
    def of(cls, logged: LoggedDecision) -> DecisionOut:
        return cls(**logged.shown())


@router.get(
    "/orgs/{org}/decisions",
    summary="The organization's logged AuthZEN decisions, newest first (audit:read)",
    responses=errors(400, 403, 404),
)
async def list_decisions(
    request: Request,
    org: OrgRef,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    decision: Annotated[bool | None, Query(description="Only permits (true) or denies.")] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> Page[DecisionOut]:
    async def work(call: OrgCall) -> Page[DecisionOut]:
        await call.require("audit:read")
        found = await call.unit.policies.decisions(
            call.org.id,
            limit,
            before=call.open_before("decisions", cursor),
            allowed=decision,
            since=since,
            until=until,
        )
        return Page[DecisionOut](
            items=[DecisionOut.of(d) for d in found],
            next_cursor=call.seal_before("decisions", [d.id for d in found], limit),
        )

    return await in_org(request, org, "api.decisions.list", work, change=False)
