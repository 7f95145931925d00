"""The signed-in user's password and e-mail address: ``/account/password``, ``/account/email``.

- Both changes are sensitive (OWASP ASVS 5.0 V6.2.3 / 4.0 V2.1.5 and V3.7.1): behind the
  re-authentication gate (web/reauth.py, ``OSTIARY_REAUTH_SECONDS``), CSRF-checked (V4.2.2),
  and confirmed with the current password, checked as a sign-in is: throttled in the same
  buckets (a guess here counts towards the sign-in limit), audited, and argon2 run between two
  transactions, never inside one (features/accounts/service.py).
- A new password meets the password policy (NIST SP 800-63B 5.1.1.2, zxcvbn with the user's
  own details: protocol/password_policy.py) and is typed twice. Once it is stored, every other
  session of the user ends, on every node, as "sign out everywhere else" does (ASVS 5.0 V7.4.3);
  this one stays.
- A new address is normalized and validated as ``ostiary users create`` does, becomes
  unverified (``email_verified`` false) and is audited with both addresses masked; sessions
  stay. Whether an address is taken is said only after the password was proven. No mail is
  sent yet (to the old address, or to verify the new one): the mail port comes with issue 12.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.accounts.service import (
    AccountError,
    AccountService,
    EmailUnavailable,
    InvalidEmail,
    LoginThrottled,
    PasswordAttempt,
    SameEmail,
    UnknownUser,
    WeakPassword,
)
from ostiary.features.sessions.models import Session
from ostiary.protocol.password_policy import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.openapi_forms import form_body
from ostiary.web.reauth import reauth_redirect
from ostiary.web.routes.browser import FORM_ERRORS, current_session, render_form, require_csrf

__all__ = ["router"]

router = APIRouter(tags=["browser"])
T = TypeVar("T")

PASSWORD_PAGE = "/account/password"  # noqa: S105 (a path)
EMAIL_PAGE = "/account/email"
PASSWORD_CHANGED = "account.password.changed"  # noqa: S105 (an audit action)
EMAIL_CHANGED = "account.email.changed"
_NO_STORE = {"Cache-Control": "no-store"}
_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _HTML,
    303: {"description": "Not signed in, or signed in too long ago: to /login"},
}
_POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **FORM_ERRORS,
    303: {"description": "Changed: to /account; or to sign in again first"},
    429: _HTML,
}
# The password fields, typed so that documentation and form generators mask them.
_PASSWORDS = ("current_password", "new_password", "confirm_password")
_PASSWORD_FIELD = {"format": "password"}


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=_NO_STORE)


def _password_page(
    request: Request, user: User, error: str = "", field: str = "", status_code: int = 200
) -> Response:
    return render_form(
        request,
        "account_password.html",
        status_code=status_code,
        email=user.email,
        error=error,
        error_field=field,
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
    )


def _email_page(
    request: Request,
    user: User,
    email: str = "",
    error: str = "",
    field: str = "",
    status_code: int = 200,
) -> Response:
    return render_form(
        request,
        "account_email.html",
        status_code=status_code,
        current=user.email,
        email=email,
        error=error,
        error_field=field,
    )


async def _page_session(request: Request, page: str) -> tuple[Session, User] | Response:
    """The signed-in, recently authenticated session; otherwise where to send the browser."""
    found = await current_session(request)
    if found is None:
        return _redirect(f"/login?next={page}")
    again = reauth_redirect(request, *found, back_to=page)
    return found if again is None else again


async def _form_session(
    request: Request, page: str
) -> tuple[dict[str, str], Session, User] | Response:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    again = reauth_redirect(request, *found, back_to=page)
    return (form, *found) if again is None else again


async def _begin(
    request: Request, user: User, action: str, check: Callable[[AccountService], T]
) -> tuple[AccountService, PasswordAttempt, T]:
    """``check`` the new value, then take the throttle slots of a current-password check (a
    refusal is audited and committed). The service comes back for the argon2 steps, which
    touch no store and run outside the transaction."""
    rt = runtime_of(request)
    device = request.cookies.get(rt.settings.throttle.device_cookie_name)
    throttled: LoginThrottled | None = None
    async with rt.unit() as unit:
        accounts = unit.accounts
        checked = check(accounts)
        try:
            attempt = await accounts.begin_confirmation(
                user.id, action=action, ip=client_ip(request), device_cookie=device
            )
        except LoginThrottled as exc:
            throttled = exc
        except UnknownUser as exc:  # the account went since the session was read
            raise PageError(401, "Your session has ended. Sign in again.") from exc
    if throttled is not None:
        raise PageError(429, str(throttled), headers={"Retry-After": str(throttled.retry_after)})
    return accounts, attempt, checked


# -- the password -----------------------------------------------------------------------------


@router.get(
    PASSWORD_PAGE,
    summary="Change your password",
    response_class=Response,
    responses=_GET_RESPONSES,
)
async def password_page(request: Request) -> Response:
    found = await _page_session(request, PASSWORD_PAGE)
    if isinstance(found, Response):
        return found
    return _password_page(request, found[1])


@router.post(
    PASSWORD_PAGE,
    summary="Change your password (current password, new one twice); ends your other sessions",
    response_class=Response,
    openapi_extra=form_body(
        "csrf_token", *_PASSWORDS, schemas=dict.fromkeys(_PASSWORDS, _PASSWORD_FIELD)
    ),
    responses=_POST_RESPONSES,
)
async def change_password(request: Request) -> Response:
    found = await _form_session(request, PASSWORD_PAGE)
    if isinstance(found, Response):
        return found
    form, session, user = found
    rt = runtime_of(request)
    current = form.get("current_password", "")
    new = form.get("new_password", "")
    if new != form.get("confirm_password", ""):
        return _password_page(
            request, user, "The new passwords do not match.", "confirm_password", 400
        )
    try:
        accounts, attempt, _ = await _begin(
            request, user, PASSWORD_CHANGED, lambda a: a.check_new_password(user, new)
        )
    except WeakPassword as exc:
        return _password_page(request, user, str(exc), "new_password", 400)
    # argon2 (the check, then the new hash) between two short transactions.
    attempt = await accounts.check_password(attempt, current)
    new_hash = await accounts.hash_password(new) if attempt.password_ok else None
    failure: AccountError | None = None
    ip = client_ip(request)
    async with rt.unit() as unit:
        try:
            await unit.accounts.change_password(attempt, new_hash, ip=ip)
        except AccountError as exc:  # audited; caught inside so that the audit commits
            failure = exc
        else:
            await unit.sessions.revoke_all(
                user.id, keep_sid=session.sid, ip=ip, reason="password_change"
            )
    if failure is not None:
        return _password_page(request, user, str(failure), "current_password", 401)
    return _redirect("/account?notice=password_changed")


# -- the e-mail address -----------------------------------------------------------------------


@router.get(
    EMAIL_PAGE,
    summary="Change your e-mail address",
    response_class=Response,
    responses=_GET_RESPONSES,
)
async def email_page(request: Request) -> Response:
    found = await _page_session(request, EMAIL_PAGE)
    if isinstance(found, Response):
        return found
    return _email_page(request, found[1])


@router.post(
    EMAIL_PAGE,
    summary="Change your e-mail address (confirmed with your current password)",
    response_class=Response,
    openapi_extra=form_body(
        "csrf_token",
        "email",
        "current_password",
        schemas={"current_password": _PASSWORD_FIELD},
    ),
    responses={**_POST_RESPONSES, 409: _HTML},
)
async def change_email(request: Request) -> Response:
    found = await _form_session(request, EMAIL_PAGE)
    if isinstance(found, Response):
        return found
    form, _session, user = found
    rt = runtime_of(request)
    typed = form.get("email", "")[:254]
    try:
        accounts, attempt, email = await _begin(
            request, user, EMAIL_CHANGED, lambda a: a.check_new_email(user, typed)
        )
    except (InvalidEmail, SameEmail) as exc:
        return _email_page(request, user, typed, str(exc), "email", 400)
    attempt = await accounts.check_password(attempt, form.get("current_password", ""))
    failure: AccountError | None = None
    async with rt.unit() as unit:
        try:
            await unit.accounts.change_email(attempt, email, ip=client_ip(request))
        except AccountError as exc:  # audited; caught inside so that the audit commits
            failure = exc
    if isinstance(failure, EmailUnavailable):
        return _email_page(request, user, typed, str(failure), "email", 409)
    if failure is not None:
        return _email_page(request, user, typed, str(failure), "current_password", 401)
    # After the commit, with no transaction open: a link that verifies the new address.
    mailed = await rt.send_email_verification(user.id, email)
    return _redirect(
        "/account?notice=email_changed_mailed"
        if mailed == "sent"
        else "/account?notice=email_changed"
    )
