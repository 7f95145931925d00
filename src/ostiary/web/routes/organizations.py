"""A person's side of organizations (issue 12, section 1): invitations by link, the
organizations they belong to with their roles, the active organization, leaving one; and the
dev outbox at /dev/mail.

- ``GET /invitations/{token}`` shows which organization invites (nothing for a token we did not
  issue); accepting (``POST``, CSRF-checked, OWASP ASVS V4.2.2) needs a sign-in with the
  invited address: a person not signed in is sent to /login and back. There is no self-service
  registration yet, so a person without an account is told to ask for one. Expired, revoked
  and used links get a page that says so (410), never a 500.
- The active organization (``org_preferences``) is what org-scoped clients put in ``org_id``;
  only one of the user's own organizations can be chosen.
- ``GET /dev/mail``: the messages of the in-memory outbox, only under ``ostiary dev`` without
  an SMTP server (404 otherwise); the HTML bodies are not rendered, only their text and links.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.invitations.models import InvitationGone, WrongInvitee
from ostiary.features.mail.models import MailNotConfigured
from ostiary.features.orgs.models import (
    Conflict,
    Forbidden,
    LastOwner,
    NotAMember,
    NotFound,
    TenancyError,
)
from ostiary.protocol.masking import mask_email
from ostiary.web.deps import read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.memberships import org_rows
from ostiary.web.openapi_forms import form_body
from ostiary.web.pages import render
from ostiary.web.routes.browser import FORM_ERRORS, current_session, render_form, require_csrf

__all__ = ["router"]

router = APIRouter(tags=["browser"])

_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_TOKEN = re.compile(r"ost_inv_[A-Za-z0-9_-]{20,100}")
_ORG_ID = re.compile(r"[0-9a-f-]{36}")
_LINK = re.compile(r"https?://[^\s<>\"']+")
_NO_STORE = {"Cache-Control": "no-store"}
# The roles the invitation form offers (owners are made with the CLI or the management API).
_INVITABLE = ("reader", "member", "admin")


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=_NO_STORE)


# -- invitations ---------------------------------------------------------------------------


def _gone_page(exc: InvitationGone) -> Response:
    status = 404 if exc.reason == "unknown" else 410
    return render(
        "invitation.html", status_code=status, state=exc.reason, message=exc.message, org=None
    )


async def _invitation_view(request: Request, token: str) -> tuple[Any, Any, User | None]:
    if not _TOKEN.fullmatch(token):
        raise InvitationGone("unknown")
    rt = runtime_of(request)
    found = await current_session(request)
    async with rt.unit() as unit:
        invitation, org = await unit.invitations.lookup(token)
    state = invitation.state(rt.clock.now())
    if state != "pending":
        raise InvitationGone(state)
    return invitation, org, found[1] if found else None


@router.get(
    "/invitations/{token}",
    summary="An invitation to join an organization",
    response_class=Response,
    responses={200: _HTML, 403: _HTML, 404: _HTML, 410: _HTML},
)
async def invitation_page(request: Request, token: str) -> Response:
    try:
        invitation, org, user = await _invitation_view(request, token)
    except InvitationGone as exc:
        return _gone_page(exc)
    here = f"/invitations/{token}"
    if user is None:
        return render_form(
            request,
            "invitation.html",
            state="sign_in",
            org=org,
            invited=mask_email(invitation.email),
            login=f"/login?next={here}",
        )
    if user.email != invitation.email:
        return render_form(
            request,
            "invitation.html",
            status_code=403,
            state="wrong_email",
            org=org,
            invited=mask_email(invitation.email),
            email=user.email,
        )
    roles = []
    async with runtime_of(request).unit() as unit:
        for ref in invitation.roles:
            try:
                roles.append((await unit.rbac.get_role(org.id, ref)).name)
            except NotFound:
                continue
    return render_form(
        request,
        "invitation.html",
        state="pending",
        org=org,
        roles=roles,
        email=user.email,
        action=here,
        expires=invitation.expires_at,
    )


@router.post(
    "/invitations/{token}",
    summary="Accept an invitation",
    response_class=Response,
    openapi_extra=form_body("csrf_token"),
    responses={
        **FORM_ERRORS,
        303: {"description": "Joined (to /account/organizations), or to /login first"},
        404: {"description": "Unknown invitation", **_HTML},
        409: {"description": "Already a member", **_HTML},
        410: {"description": "Expired, revoked or already used", **_HTML},
    },
)
async def accept_invitation(request: Request, token: str) -> Response:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    if not _TOKEN.fullmatch(token):
        return _gone_page(InvitationGone("unknown"))
    found = await current_session(request)
    if found is None:
        return _redirect(f"/login?next=/invitations/{token}")
    user = found[1]
    rt = runtime_of(request)
    refused: TenancyError | None = None
    try:
        async with rt.unit() as unit:
            try:
                await unit.invitations.accept(token, user_id=user.id, user_email=user.email)
            except (InvitationGone, WrongInvitee, Conflict) as exc:
                refused = exc  # nothing written but the refusal's audit event: keep it
    except TenancyError as exc:  # after the token was spent: all of it rolled back
        refused = exc
    if isinstance(refused, InvitationGone):
        return _gone_page(refused)
    if refused is not None:
        status = 403 if isinstance(refused, WrongInvitee) else 409
        raise PageError(status, refused.message)
    return _redirect("/account/organizations?notice=joined")


# -- the user's organizations ----------------------------------------------------------------


@router.get(
    "/account/organizations",
    summary="Your organizations: roles, the active one, leaving",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Not signed in: to /login"}},
)
async def organizations_page(request: Request) -> Response:
    found = await current_session(request)
    if found is None:
        return _redirect("/login?next=/account/organizations")
    async with runtime_of(request).unit() as unit:
        rows = await org_rows(unit, found[1].id)
    return render_form(
        request,
        "account_organizations.html",
        rows=rows,
        notice=request.query_params.get("notice", "")[:40],
        error=None,
    )


async def _signed_in_form(request: Request) -> tuple[dict[str, str], User]:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    return form, found[1]


@router.post(
    "/account/organizations/active",
    summary="Choose your active organization",
    response_class=Response,
    openapi_extra=form_body("csrf_token", "organization_id"),
    responses={**FORM_ERRORS, 303: {"description": "Chosen"}, 404: _HTML},
)
async def choose_active(request: Request) -> Response:
    form, user = await _signed_in_form(request)
    org_id = form.get("organization_id", "")
    if not _ORG_ID.fullmatch(org_id):
        raise PageError(404, "You are not a member of that organization.")
    try:
        async with runtime_of(request).unit() as unit:
            await unit.orgs.set_active_org(user.id, org_id)
    except NotFound:
        raise PageError(404, "You are not a member of that organization.") from None
    return _redirect("/account/organizations?notice=active")


@router.post(
    "/account/organizations/{org_id}/leave",
    summary="Leave an organization",
    response_class=Response,
    openapi_extra=form_body("csrf_token"),
    responses={**FORM_ERRORS, 303: {"description": "Left"}, 404: _HTML, 409: _HTML},
)
async def leave(request: Request, org_id: str) -> Response:
    _form, user = await _signed_in_form(request)
    if not _ORG_ID.fullmatch(org_id):
        raise PageError(404, "You are not a member of that organization.")
    rt = runtime_of(request)
    try:
        async with rt.unit() as unit:
            await unit.orgs.leave(org_id, user.id)
    except LastOwner:
        async with rt.unit() as unit:
            rows = await org_rows(unit, user.id)
        return render_form(
            request,
            "account_organizations.html",
            status_code=409,
            rows=rows,
            notice="",
            error=(
                "You are the last owner of this organization, so you cannot leave it. "
                "Make another member an owner first."
            ),
        )
    except (NotAMember, NotFound):
        raise PageError(404, "You are not a member of that organization.") from None
    return _redirect("/account/organizations?notice=left")


@router.post(
    "/account/organizations/{org_id}/invitations",
    summary="Invite someone to an organization by e-mail (members:manage)",
    response_class=Response,
    openapi_extra=form_body("csrf_token", "email", "role"),
    responses={
        **FORM_ERRORS,
        303: {"description": "Invited"},
        404: _HTML,
        503: {"description": "No mail server configured", **_HTML},
    },
)
async def invite(request: Request, org_id: str) -> Response:
    form, user = await _signed_in_form(request)
    if not _ORG_ID.fullmatch(org_id):
        raise PageError(404, "You are not a member of that organization.")
    role = form.get("role", "")
    if role not in _INVITABLE:
        raise PageError(400, "Choose one of the roles offered.")
    rt = runtime_of(request)
    try:
        result = await rt.invite(org_id, form.get("email", ""), [role], actor=user.id)
    except MailNotConfigured:
        raise PageError(
            503, "This server cannot send e-mail (no mail server is configured)."
        ) from None
    except NotFound:
        raise PageError(404, "You are not a member of that organization.") from None
    except TenancyError as exc:  # nothing was written: record the refusal
        async with rt.unit() as unit:
            await unit.audit.record(
                "org.invitation.create",
                "failure",
                actor=user.id,
                target=org_id,
                details={"organization_id": org_id, "code": exc.code},
            )
            rows = await org_rows(unit, user.id)
        status = 403 if isinstance(exc, Forbidden) else 400
        return render_form(
            request,
            "account_organizations.html",
            status_code=status,
            rows=rows,
            notice="",
            error=exc.message,
        )
    notice = "invited" if result.mail == "sent" else "invite_unsent"
    return _redirect(f"/account/organizations?notice={notice}")


# -- the dev outbox ----------------------------------------------------------------------------


@router.get("/dev/mail", include_in_schema=False)
async def dev_mail(request: Request, format: str | None = None) -> Response:
    outbox = runtime_of(request).dev_outbox
    if outbox is None or not runtime_of(request).settings.dev_mode:
        raise PageError(404, "Not found.")
    entries = [
        {
            "number": entry.number,
            "sent_at": entry.sent_at.isoformat(),
            "to": entry.message.to,
            "subject": entry.message.subject,
            "text": entry.message.text,
            "links": _LINK.findall(entry.message.text),
        }
        for entry in outbox.messages()
    ]
    if format == "json":
        return JSONResponse({"messages": entries}, headers=_NO_STORE)
    return render("dev_mail.html", messages=entries)
