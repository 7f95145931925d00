"""A sign-in's second step: a passkey, the authenticator code, or a recovery code instead.

After the password (web/routes/browser.py ``login``) a user with an active TOTP factor holds a
signed, single-use ticket (web/second_step.py) and no session yet. This page asks for the
code; a correct one starts the session with ``amr`` ``pwd otp mfa`` (RFC 8176 section 2) and
continues to ``next`` as a one-factor sign-in does. Codes are checked, throttled and audited by
features/mfa (RFC 6238 section 5.2: a code is accepted once). OWASP ASVS 4.0 V2.8, V4.2.2
(CSRF on the form), V5.1.5 (``next`` is a local path). The passkey (WebAuthn) variant of this
step is web/routes/passkey_sign_in.py; this page offers it to a user who has passkeys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.service import AccountError, LoginThrottled
from ostiary.features.mfa.models import MfaFactors
from ostiary.features.mfa.service import NotEnrolled
from ostiary.protocol.oidc import ACR_PHISHING_RESISTANT, ACR_PHISHING_RESISTANT_HARDWARE
from ostiary.protocol.redirects import safe_local_path
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.openapi_forms import form_body
from ostiary.web.pages import render
from ostiary.web.routes.browser import (
    FORM_ERRORS,
    csrf_guard,
    render_form,
    set_session_cookie,
    signed_in,
    start_session,
)
from ostiary.web.runtime import Runtime, Unit
from ostiary.web.second_step import SecondStepTicket, ticket_cookie_name

__all__ = ["MFA_AMR", "completed_methods", "router"]

router = APIRouter(tags=["browser"])

# RFC 8176 section 2: password, one-time code, and "mfa" since two factors were used.
MFA_AMR = ("pwd", "otp", "mfa")
_MAX_CODE_LEN = 64

_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_CODE_BODY = form_body(
    "code",
    "csrf_token",
    optional=("method", "next"),
    schemas={"method": {"enum": ["totp", "recovery"]}},
)


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _cookie_name(rt: Runtime) -> str:
    return ticket_cookie_name(rt.settings.sessions.cookie_secure)


def _ticket(rt: Runtime, request: Request) -> SecondStepTicket | None:
    browser = request.cookies.get(csrf_guard(request).cookie_name)
    value = request.cookies.get(_cookie_name(rt))
    return rt.second_step.read(value, now=rt.clock.now(), browser=browser)


def _back_to_login(rt: Runtime, next_path: str) -> Response:
    """No valid ticket (none, expired, forged, spent): the sign-in starts again."""
    response = _redirect("/login?" + urlencode({"next": next_path}))
    response.delete_cookie(
        _cookie_name(rt), path="/", secure=rt.settings.sessions.cookie_secure, httponly=True
    )
    return response


def _page(
    request: Request,
    *,
    next_path: str,
    method: str,
    factors: MfaFactors | None = None,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    passkey_only: bool = False,
) -> Response:
    def url(other: str) -> str:
        return "/login/second-step?" + urlencode({"next": next_path, "method": other})

    totp = factors is None or factors.totp
    passkeys = _passkeys_usable(request, factors)
    others = [m for m in ("passkey", "totp", "recovery") if m != method and not passkey_only]
    others = [m for m in others if (m != "totp" or totp) and (m != "passkey" or passkeys)]
    response = render_form(
        request,
        "second_step.html",
        status_code=status_code,
        next=next_path,
        method=method,
        error=error,
        left=None,
        passkey_only=passkey_only,
        # The first other method keeps the id "other-method" (the code / recovery toggle).
        others=[(m, url(m)) for m in sorted(others, key=lambda m: m == "passkey")],
    )
    response.headers.update(headers or {})
    return response


@router.get(
    "/login/second-step",
    summary="Second step of a sign-in: authenticator or recovery code",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "No pending sign-in: to /login"}},
)
async def second_step_page(
    request: Request,
    next: str | None = None,
    method: str | None = None,
    acr: str | None = None,
) -> Response:
    """``acr``: the class a step-up must reach (web/routes/authorize.py). Only a passkey
    reaches the phishing-resistant ones, so then only the passkey is offered. (A hint for the
    page, nothing more: /authorize checks what the session achieved.)"""
    rt = runtime_of(request)
    next_path = safe_local_path(next)
    ticket = _ticket(rt, request)
    if ticket is None:
        return _back_to_login(rt, next_path)
    async with rt.unit() as unit:
        factors = await unit.mfa.factors(ticket.user_id)
    usable = _passkeys_usable(request, factors)
    passkey_only = usable and acr in (ACR_PHISHING_RESISTANT, ACR_PHISHING_RESISTANT_HARDWARE)
    chosen = "passkey" if passkey_only else _method(method, factors, usable)
    return _page(
        request, next_path=next_path, method=chosen, factors=factors, passkey_only=passkey_only
    )


def _passkeys_usable(request: Request, factors: MfaFactors | None) -> bool:
    on = runtime_of(request).relying_party is not None
    return on and factors is not None and factors.passkeys > 0


def _method(value: str | None, factors: MfaFactors | None = None, passkeys: bool = False) -> str:
    """The method asked for if the user has it; else a passkey (phishing-resistant) if they
    have one, else the authenticator code, else (passkeys only, and they are off on this
    server) a recovery code."""
    totp = factors is None or factors.totp
    if value == "recovery":
        return "recovery"
    if value == "passkey" and passkeys:
        return "passkey"
    if value == "totp" and totp:
        return "totp"
    if passkeys:
        return "passkey"
    return "totp" if totp else "recovery"


class _TicketSpent(Exception):
    """Raised inside the unit of work so that the code it spent is rolled back too."""


async def completed_methods(
    unit: Unit, request: Request, ticket: SecondStepTicket, added: tuple[str, ...]
) -> tuple[list[str], dict[str, datetime]] | None:
    """The ``amr`` of the session a second step starts, and the earlier factors' times.

    A sign-in's second step follows the password (RFC 8176: ``pwd``, the factor, ``mfa``).
    A step-up adds the factor to the session the ticket names, which must still be this
    browser's, and keeps the times of the factors it had; None when that session is gone.
    """
    if not ticket.sid:
        return ["pwd", *added, "mfa"], {}
    found = await signed_in(unit, request)
    if found is None or found[0].sid != ticket.sid or found[0].user_id != ticket.user_id:
        return None
    session = found[0]
    had = [m for m in session.amr if m != "mfa"]
    times = session.factor_times or dict.fromkeys(had, session.auth_time)
    return [*had, *(m for m in added if m not in had), "mfa"], dict(times)


@router.post(
    "/login/second-step",
    summary="Finish a sign-in with an authenticator or recovery code",
    response_class=Response,
    openapi_extra=_CODE_BODY,
    responses={**FORM_ERRORS, 303: {"description": "Signed in, or to /login"}, 429: _HTML},
)
async def second_step(request: Request) -> Response:
    rt = runtime_of(request)
    form = await read_form(request)
    next_path = safe_local_path(form.get("next"))
    method = _method(form.get("method"))
    ticket = _ticket(rt, request)
    if ticket is None:
        return _back_to_login(rt, next_path)
    if not csrf_guard(request).is_valid(request, form.get("csrf_token")):
        return _page(
            request,
            next_path=next_path,
            method=method,
            status_code=403,
            error="This form expired. Please try again.",
        )
    code = form.get("code", "")[:_MAX_CODE_LEN]
    ip = client_ip(request)
    failure: AccountError | None = None
    left: int | None = None
    factors: MfaFactors | None = None
    try:
        async with rt.unit() as unit:
            user = await unit.accounts.get_cached(ticket.user_id)
            if user is None or user.disabled:
                return _back_to_login(rt, next_path)
            try:
                if method == "recovery":
                    left = await unit.mfa.use_recovery_code(user.id, code, ip=ip)
                else:
                    await unit.mfa.verify_totp(user.id, code, ip=ip)
            except NotEnrolled:
                return _back_to_login(rt, next_path)  # factors reset meanwhile
            except AccountError as exc:  # a wrong code (audited), or throttled
                failure = exc
                factors = await unit.mfa.factors(user.id)  # the other methods to offer
            else:
                methods = await completed_methods(unit, request, ticket, ("otp",))
                if methods is None or not await unit.spent_tickets.remember(
                    ticket.spent_key, ticket.expires_at
                ):
                    raise _TicketSpent
                cookie = await start_session(unit, request, user.id, *methods)
                await unit.accounts.record_sign_in(user.id, methods[0], ip=ip)
    except _TicketSpent:
        return _back_to_login(rt, next_path)
    if isinstance(failure, LoginThrottled):
        return _page(
            request,
            next_path=next_path,
            method=method,
            factors=factors,
            status_code=429,
            error=str(failure),
            headers={"Retry-After": str(failure.retry_after)},
        )
    if failure is not None:
        return _page(
            request,
            next_path=next_path,
            method=method,
            factors=factors,
            status_code=401,
            error=str(failure),
        )
    response: Response
    if left is None:
        response = _redirect(next_path)
    else:
        # A recovery code was spent: say how many remain before going on.
        response = render("second_step.html", next=next_path, method=method, left=left)
    response.delete_cookie(
        _cookie_name(rt), path="/", secure=rt.settings.sessions.cookie_secure, httponly=True
    )
    set_session_cookie(rt, response, cookie)
    return response
