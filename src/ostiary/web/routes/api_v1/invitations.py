"""/api/v1/orgs/{org}/invitations (issue 12, sections 1 and 4): invitations by e-mail over the
management API, on features/invitations.

Everything here needs ``members:manage``, and the roles of an invitation must carry only
permissions the caller holds (so only an owner invites an owner). Creating and re-sending run
in two steps: the caller is authorized in one transaction; then ``Runtime.invite`` commits the
invitation, mails the link with no transaction open and records the outcome. ``"mail": false``
(or a server without a mail server, which otherwise answers 503 ``mail_not_configured``) sends
nothing and answers the accept link instead, for the caller to deliver: the link is a bearer
secret, shown to this caller once, and still needs a sign-in with the invited address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from ostiary.features.invitations.models import Invitation
from ostiary.features.mail.models import MailNotConfigured
from ostiary.features.orgs.models import TenancyError
from ostiary.web.deps import runtime_of
from ostiary.web.errors import ApiError
from ostiary.web.management import OrgCall, in_org, status_of
from ostiary.web.routes.api_v1.schemas import (
    CursorQuery,
    LimitQuery,
    OrgRef,
    Page,
    Ref,
    _In,
    errors,
)
from ostiary.web.runtime import InviteResult

__all__ = ["router"]

router = APIRouter(tags=["invitations"])

InvitationRef = Annotated[
    str, Path(description="Invitation id.", min_length=1, max_length=36, pattern=r"^[\w-]+$")
]


class InvitationCreate(_In):
    email: Annotated[
        str, Field(min_length=3, max_length=320, pattern=r"^[^\x00-\x20\x7f]+@[^\x00-\x20\x7f]+$")
    ]
    roles: Annotated[list[Ref], Field(min_length=1, max_length=20)]
    mail: bool = Field(default=True, description="false: send nothing, answer the link.")


class InvitationResend(_In):
    mail: bool = Field(default=True, description="false: send nothing, answer the link.")


class InvitationOut(BaseModel):
    id: str
    email: str
    roles: list[str]
    state: Literal["pending", "expired", "accepted", "revoked"]
    mail_status: str
    inviter: str | None = Field(description="Who invited: a user id, key:<id>, or null (CLI).")
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation, now: datetime) -> InvitationOut:
        return cls(
            id=invitation.id,
            email=invitation.email,
            roles=list(invitation.roles),
            state=invitation.state(now),
            mail_status=invitation.mail_status,
            inviter=invitation.inviter_id,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            ended_at=invitation.ended_at,
        )


class IssuedInvitationOut(InvitationOut):
    mail: Literal["sent", "failed", "not_sent"]
    mail_error: str | None = None
    link: str | None = Field(description="The accept link, only when no mail was sent.")


async def _issue(
    request: Request, org: str, action: str, roles: list[str] | None, invitation_id: str | None
) -> tuple[str, str]:
    """Authorize the caller (members:manage, no escalation) in one transaction: (the
    organization's id, the actor)."""

    async def work(call: OrgCall) -> tuple[str, str]:
        await call.require("members:manage")
        wanted = set()
        if invitation_id is not None:
            wanted = set((await call.unit.invitations.get(call.org.id, invitation_id)).roles)
        wanted |= await call.role_ids(roles or ())
        await call.refuse_role_escalation(wanted, "these roles")
        return call.org.id, call.actor

    return await in_org(request, org, action, work)


def _answer(request: Request, result: InviteResult, mail: bool) -> IssuedInvitationOut:
    base = InvitationOut.of(result.invitation, runtime_of(request).clock.now()).model_dump()
    return IssuedInvitationOut(
        **base,
        mail=result.mail,
        mail_error=result.error,
        link=None if mail and result.mail != "not_sent" else result.link,
    )


def _mail_refused(exc: MailNotConfigured) -> ApiError:
    return ApiError(503, "mail_not_configured", f'{exc}; send "mail": false for the link')


@router.post(
    "/orgs/{org}/invitations",
    status_code=201,
    summary="Invite an e-mail address with roles (members:manage)",
    responses=errors(403, 404, 409, 503),
)
async def create_invitation(
    request: Request, org: OrgRef, body: InvitationCreate
) -> IssuedInvitationOut:
    org_id, actor = await _issue(request, org, "api.invitation.create", body.roles, None)
    try:
        result = await runtime_of(request).invite(
            org_id, body.email, body.roles, actor=actor, send=body.mail, authorized=True
        )
    except MailNotConfigured as exc:
        raise _mail_refused(exc) from None
    except TenancyError as exc:
        raise ApiError(status_of(exc.code), exc.code, exc.message) from None
    return _answer(request, result, body.mail)


@router.get(
    "/orgs/{org}/invitations",
    summary="List the invitations (members:manage)",
    responses=errors(400, 403, 404),
)
async def list_invitations(
    request: Request, org: OrgRef, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[InvitationOut]:
    async def work(call: OrgCall) -> Page[InvitationOut]:
        await call.require("members:manage")
        items, after = await call.unit.invitations.list_invitations(
            call.org.id, limit=limit, cursor=call.open_cursor("invitations", cursor)
        )
        now = runtime_of(request).clock.now()
        return Page[InvitationOut](
            items=[InvitationOut.of(i, now) for i in items],
            next_cursor=call.seal_cursor("invitations", after),
        )

    return await in_org(request, org, "api.invitation.list", work, change=False)


@router.post(
    "/orgs/{org}/invitations/{invitation}/resend",
    summary="A new link for a pending invitation, mailed again; the old link stops "
    "(members:manage)",
    responses=errors(403, 404, 409, 503),
)
async def resend_invitation(
    request: Request, org: OrgRef, invitation: InvitationRef, body: InvitationResend
) -> IssuedInvitationOut:
    org_id, actor = await _issue(request, org, "api.invitation.resend", None, invitation)
    try:
        result = await runtime_of(request).resend_invitation(
            org_id, invitation, actor=actor, send=body.mail, authorized=True
        )
    except MailNotConfigured as exc:
        raise _mail_refused(exc) from None
    except TenancyError as exc:
        raise ApiError(status_of(exc.code), exc.code, exc.message) from None
    return _answer(request, result, body.mail)


@router.delete(
    "/orgs/{org}/invitations/{invitation}",
    status_code=204,
    response_class=Response,
    summary="Withdraw a pending invitation: its link stops working (members:manage)",
    responses=errors(403, 404, 409),
)
async def revoke_invitation(request: Request, org: OrgRef, invitation: InvitationRef) -> Response:
    async def work(call: OrgCall) -> None:
        await call.require("members:manage")
        await call.unit.invitations.revoke(
            call.org.id, invitation, actor=call.actor, authorized=True
        )

    await in_org(request, org, "api.invitation.revoke", work)
    return Response(status_code=204)
