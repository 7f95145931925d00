"""Browser sign-in, sign-out and the account page (sessions list, revoke, sign out elsewhere).

OWASP ASVS 4.0: V2.2 (generic failure message, throttling), V3.2-V3.4 (session ids, cookie
attributes, termination), V4.2.2 (CSRF on every state-changing form), V5.1.5 (no open
redirects: ``next`` must be a local path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.accounts.service import AccountError, LoginThrottled, PasswordAttempt
from ostiary.features.sessions.models import Session
from ostiary.protocol.redirects import safe_local_path
from ostiary.web.csrf import CsrfGuard
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.memberships import org_rows
from ostiary.web.openapi_forms import form_body
from ostiary.web.pages import render
from ostiary.web.runtime import Runtime, Unit
from ostiary.web.second_step import TICKET_TTL_SECONDS, ticket_cookie_name

router = APIRouter(tags=["browser"])
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_FORM_BODY = form_body("csrf_token")
_LOGIN_BODY = form_body(
    "email",
    "password",
    "csrf_token",
    optional=("next",),
    schemas={"password": {"format": "password"}},
)
_HTML: dict[str, Any] = {"content": {"text/html": {}}}
# Every form route can refuse a malformed body (400), a body that is not a form (415) and one
# over 1 MiB (413), and answers 401 when the session ended before the form was sent.
FORM_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed form", **_HTML},
    401: {"description": "Signed out", **_HTML},
    403: {"description": "CSRF check failed", **_HTML},
    413: {"description": "Body too large"},
    415: {"description": "Not application/x-www-form-urlencoded", **_HTML},
}


def csrf_guard(request: Request) -> CsrfGuard:
    guard: CsrfGuard = request.app.state.csrf
    return guard


_FORM_EXPIRED = "This form expired. Go back, reload the page and try again."


def require_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a state-changing form whose CSRF token does not match this browser (403)."""
    if not csrf_guard(request).is_valid(request, submitted):
        raise PageError(403, _FORM_EXPIRED)


def render_form(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> Response:
    """Render a page that holds forms: adds ``csrf_token`` and sets the CSRF cookie if new."""
    guard = csrf_guard(request)
    token, new_cookie = guard.token_for(request)
    response = render(template, status_code=status_code, csrf_token=token, **context)
    guard.set_cookie(response, new_cookie)
    return response


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def set_session_cookie(rt: Runtime, response: Response, value: str) -> None:
    s = rt.settings.sessions
    response.set_cookie(
        s.cookie_name,
        value,
        max_age=int(s.absolute_timeout.total_seconds()),
        httponly=True,
        secure=s.cookie_secure,
        samesite="lax",
        path="/",
    )


def _set_device_cookie(rt: Runtime, response: Response, value: str | None) -> None:
    """The known-device cookie (``protocol/device_cookies.py``); kept across sign-outs."""
    throttle = rt.settings.throttle
    if value is None or throttle.known_device_ttl is None:
        return
    response.set_cookie(
        throttle.device_cookie_name,
        value,
        max_age=int(throttle.known_device_ttl.total_seconds()),
        httponly=True,
        secure=rt.settings.sessions.cookie_secure,
        samesite="lax",
        path="/",
    )


def clear_session_cookie(rt: Runtime, response: Response) -> None:
    s = rt.settings.sessions
    response.delete_cookie(
        s.cookie_name, path="/", secure=s.cookie_secure, httponly=True, samesite="lax"
    )


async def signed_in(unit: Unit, request: Request) -> tuple[Session, User] | None:
    """The signed-in session and user for this request, or None (disabled users included)."""
    cookie = request.cookies.get(unit.settings.sessions.cookie_name)
    if not cookie:
        return None
    await runtime_of(request).catch_up(unit)
    session = await unit.sessions.resolve(cookie)
    if session is None:
        return None
    user = await unit.accounts.get_cached(session.user_id)
    if user is None or user.disabled:
        await unit.sessions.revoke_all(session.user_id, reason="user_disabled")
        return None
    return session, user


async def current_session(request: Request) -> tuple[Session, User] | None:
    """:func:`signed_in` in a transaction of its own."""
    rt = runtime_of(request)
    if not request.cookies.get(rt.settings.sessions.cookie_name):
        return None
    async with rt.unit() as unit:
        return await signed_in(unit, request)


def _login_page(
    request: Request,
    *,
    next_path: str,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    response = render_form(
        request,
        "login.html",
        status_code=status_code,
        next=next_path,
        error=error,
        email=email,
        # Passwordless passkeys (web/routes/passkey_sign_in.py), when the settings allow them.
        passkeys_on=runtime_of(request).relying_party is not None,
    )
    response.headers.update(headers or {})
    return response


@router.get("/", include_in_schema=False)
async def home() -> Response:
    return _redirect("/account")


@router.get(
    "/login",
    summary="Sign-in page",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Already signed in"}},
)
async def login_page(
    request: Request,
    next: str | None = None,
    login_hint: str | None = None,
    reauth: str | None = None,
) -> Response:
    """``reauth=1`` (OIDC ``prompt=login`` / ``max_age``) shows the form to a signed-in user."""
    next_path = safe_local_path(next)
    if reauth != "1" and await current_session(request) is not None:
        return _redirect(next_path)
    return _login_page(request, next_path=next_path, email=(login_hint or "")[:254])


@router.post(
    "/login",
    summary="Sign in with e-mail and password",
    response_class=Response,
    openapi_extra=_LOGIN_BODY,
    responses={**FORM_ERRORS, 303: {"description": "Signed in"}, 429: _HTML},
)
async def login(request: Request) -> Response:
    rt = runtime_of(request)
    form = await read_form(request)
    next_path = safe_local_path(form.get("next"))
    email = form.get("email", "")[:254]
    if not csrf_guard(request).is_valid(request, form.get("csrf_token")):
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            status_code=403,
            error="Your sign-in form expired. Please try again.",
        )
    ip = client_ip(request)
    failure: AccountError | None = None
    second_step = False
    password = form.get("password", "")
    async with rt.unit() as unit:
        accounts = unit.accounts
        try:
            device = request.cookies.get(rt.settings.throttle.device_cookie_name)
            attempt = await accounts.begin_sign_in(email, ip=ip, device_cookie=device)
        except AccountError as exc:
            failure = exc
    if failure is None:
        # argon2 runs between two short transactions, never while holding the database.
        attempt = await accounts.check_password(attempt, password)
        async with rt.unit() as unit:
            try:
                # A user with a second factor is not signed in by the password alone.
                second_step = await _has_second_factor(unit, attempt)
                signed_in = await unit.accounts.finish_sign_in(
                    attempt, password, second_step=second_step
                )
            except AccountError as exc:
                failure = exc
            else:
                if not second_step:
                    cookie = await start_session(unit, request, signed_in.user.id, signed_in.amr)
    if failure is not None:
        if isinstance(failure, LoginThrottled):
            return _login_page(
                request,
                next_path=next_path,
                email=email,
                status_code=429,
                error=str(failure),
                headers={"Retry-After": str(failure.retry_after)},
            )
        return _login_page(
            request, next_path=next_path, email=email, status_code=401, error=str(failure)
        )
    if second_step:
        response = to_second_step(rt, request, signed_in.user.id, next_path)
    elif rt.settings.mfa_required:
        # OSTIARY_MFA_REQUIRED and no factor yet: set one up first (web/routes/authorize.py
        # issues nothing to a session without one).
        response = _redirect("/account/security?" + urlencode({"next": next_path}))
        set_session_cookie(rt, response, cookie)
    else:
        response = _redirect(next_path)
        set_session_cookie(rt, response, cookie)
    _set_device_cookie(rt, response, signed_in.device_cookie)
    return response


async def _has_second_factor(unit: Unit, attempt: PasswordAttempt) -> bool:
    """Whether a right password still needs a second step (asked only when it is right)."""
    if not attempt.password_ok or attempt.user is None:
        return False
    return (await unit.mfa.factors(attempt.user.id)).any


async def start_session(
    unit: Unit,
    request: Request,
    user_id: str,
    amr: tuple[str, ...] | list[str],
    factor_times: Mapping[str, datetime] | None = None,
) -> str:
    """A new session for a completed sign-in (or step-up: ``factor_times`` carries the earlier
    factors' times over); its cookie value."""
    ip = client_ip(request)
    previous = request.cookies.get(unit.settings.sessions.cookie_name)
    old = await unit.sessions.resolve(previous) if previous else None
    if old is not None:
        # A fresh session id on every authentication (ASVS V3.2.1, fixation);
        # the old one ends like any sign-out: cache, tokens, every node.
        await unit.sessions.end(old, ip=ip, reason="signed_in_again")
    cookie, _session = await unit.sessions.start(
        user_id,
        list(amr),
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        factor_times=factor_times,
    )
    return cookie


def to_second_step(
    rt: Runtime,
    request: Request,
    user_id: str,
    next_path: str,
    *,
    sid: str = "",
    acr: str | None = None,
) -> Response:
    """To the second-factor page with a signed ticket for this user and browser
    (web/second_step.py); ``sid`` names the session a step-up adds the factor to, ``acr`` the
    class it must reach (the page offers the factors that reach it)."""
    guard = csrf_guard(request)
    browser, new_cookie = guard.browser_id(request)  # the login form's CSRF cookie
    ticket = rt.second_step.issue(user_id, now=rt.clock.now(), browser=browser, sid=sid)
    query = {"next": next_path} | ({"acr": acr} if acr else {})
    response = _redirect("/login/second-step?" + urlencode(query))
    guard.set_cookie(response, new_cookie)
    response.set_cookie(
        ticket_cookie_name(rt.settings.sessions.cookie_secure),
        ticket,
        max_age=TICKET_TTL_SECONDS,
        httponly=True,
        secure=rt.settings.sessions.cookie_secure,
        samesite="lax",
        path="/",
    )
    return response


@router.post(
    "/logout",
    summary="Sign out of this browser session",
    response_class=Response,
    openapi_extra=_FORM_BODY,
    responses={**FORM_ERRORS, 303: {"description": "Signed out"}},
)
async def logout(request: Request) -> Response:
    rt = runtime_of(request)
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    cookie = request.cookies.get(rt.settings.sessions.cookie_name)
    if cookie:
        async with rt.unit() as unit:
            session = await unit.sessions.resolve(cookie)
            if session is not None:
                await unit.sessions.end(session, ip=client_ip(request))
    response = _redirect("/login")
    clear_session_cookie(rt, response)
    return response


@router.get(
    "/account",
    summary="Account page: profile and active sessions",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Not signed in: to /login"}},
)
async def account(request: Request) -> Response:
    rt = runtime_of(request)
    if not request.cookies.get(rt.settings.sessions.cookie_name):
        return _redirect("/login?next=/account")
    async with rt.unit() as unit:
        found = await signed_in(unit, request)
        if found is None:
            return _redirect("/login?next=/account")
        session, user = found
        view = rt.account_views.get(user.id)
        if view is None:
            view = (
                await unit.sessions.list_for_user(user.id),
                await unit.oauth.consents_for(user.id),
            )
            rt.account_views.put(user.id, user.id, view)
        sessions = unit.sessions.live(view[0])
        organizations = await org_rows(unit, user.id)
        apps = []
        for consent in view[1]:
            client = await unit.clients.get(consent.client_id)
            if client is not None:
                apps.append(
                    {
                        "client": client,
                        "scopes": " ".join([*consent.scopes, *consent.claims]),
                        "since": consent.created_at,
                    }
                )
    return render_form(
        request,
        "account.html",
        user=user,
        sessions=sessions,
        current_sid=session.sid,
        notice=request.query_params.get("notice", "")[:40],
        apps=apps,
        organizations=organizations,
    )


@router.post(
    "/account/sessions/{sid}/revoke",
    summary="Revoke one of your sessions",
    response_class=Response,
    openapi_extra=_FORM_BODY,
    responses={**FORM_ERRORS, 303: {"description": "Revoked"}, 404: _HTML},
)
async def revoke_session(request: Request, sid: str) -> Response:
    session, _user = await _require_session_for_form(request)
    if not _SID.fullmatch(sid):  # secrets.token_urlsafe(16): never anything else
        raise PageError(404, "That session no longer exists.")
    rt = runtime_of(request)
    async with rt.unit() as unit:
        revoked = await unit.sessions.revoke(session.user_id, sid, ip=client_ip(request))
    if not revoked:
        raise PageError(404, "That session no longer exists.")
    if sid == session.sid:
        response = _redirect("/login")
        clear_session_cookie(rt, response)
        return response
    return _redirect("/account?notice=revoked")


@router.post(
    "/account/sessions/revoke-others",
    summary="Sign out everywhere else",
    response_class=Response,
    openapi_extra=_FORM_BODY,
    responses={**FORM_ERRORS, 303: {"description": "Other sessions revoked"}},
)
async def revoke_other_sessions(request: Request) -> Response:
    session, user = await _require_session_for_form(request)
    async with runtime_of(request).unit() as unit:
        await unit.sessions.revoke_all(user.id, keep_sid=session.sid, ip=client_ip(request))
    return _redirect("/account?notice=signed_out_elsewhere")


async def _require_session_for_form(request: Request) -> tuple[Session, User]:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    return found


__all__ = [
    "FORM_ERRORS",
    "clear_session_cookie",
    "csrf_guard",
    "current_session",
    "render_form",
    "require_csrf",
    "router",
    "set_session_cookie",
    "signed_in",
    "start_session",
    "to_second_step",
]
