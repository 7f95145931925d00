"""Verifying a changed e-mail address: the link mailed by ``/account/email``
(web/email_links.py) opens a page, signed in, whose button (a CSRF-checked POST, so that mail
scanners that follow links verify nothing) marks the address verified. A link for another
account, for an address the account no longer has, forged or expired is refused with a page
that says so (400), never a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.openapi_forms import form_body
from ostiary.web.pages import render
from ostiary.web.routes.browser import FORM_ERRORS, current_session, render_form, require_csrf

__all__ = ["router"]

router = APIRouter(tags=["browser"])

VERIFY_PAGE = "/account/email/verify"
_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_BAD_LINK = (
    "This confirmation link is not valid: it expired, was changed, is for another account, or "
    "your address has changed since. Change your address again to get a new link."
)


def _valid(request: Request, user: User, token: str) -> bool:
    rt = runtime_of(request)
    link = rt.email_links.verify(token, rt.clock.now())
    return link is not None and link.user_id == user.id and link.email == user.email


@router.get(
    VERIFY_PAGE,
    summary="Confirm your e-mail address (from the link mailed to it)",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Not signed in: to /login"}, 400: _HTML},
)
async def verify_page(request: Request, token: str = "") -> Response:
    found = await current_session(request)
    if found is None:
        back = f"{VERIFY_PAGE}?{urlencode({'token': token[:1024]})}"
        return RedirectResponse(
            f"/login?{urlencode({'next': back})}",
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )
    user = found[1]
    if not _valid(request, user, token):
        return render("error.html", status_code=400, title="Link not valid", message=_BAD_LINK)
    return render_form(request, "account_email_verify.html", email=user.email, token=token)


@router.post(
    VERIFY_PAGE,
    summary="Confirm your e-mail address",
    response_class=Response,
    openapi_extra=form_body("csrf_token", "token"),
    responses={**FORM_ERRORS, 303: {"description": "Verified: to /account"}},
)
async def verify(request: Request) -> Response:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    user = found[1]
    if not _valid(request, user, form.get("token", "")):
        raise PageError(400, _BAD_LINK)
    async with runtime_of(request).unit() as unit:
        current = await unit.accounts.get(user.id)
        if current is None or current.email != user.email:
            raise PageError(400, _BAD_LINK)
        await unit.accounts.update_profile(
            user.id, email_verified=True, actor=user.id, ip=client_ip(request)
        )
    return RedirectResponse(
        "/account?notice=email_verified", status_code=303, headers={"Cache-Control": "no-store"}
    )
