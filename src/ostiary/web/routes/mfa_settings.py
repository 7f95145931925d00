"""The signed-in user's second factors: ``/account/security``.

- An authenticator app (TOTP, RFC 6238): started here, the secret is shown once as a QR code
  (the ``otpauth://`` URI; segno, inline SVG) and as base32 text, and becomes active only when a
  code from the app proves the user holds it. Ten recovery codes are then shown once.
- Every POST is CSRF-checked (OWASP ASVS V4.2.2); pages that hold a secret or recovery codes
  are ``Cache-Control: no-store`` (ASVS V8.2.1; web/pages.py sends it with every page), so
  neither the browser nor a proxy keeps them.
- Passkeys (WebAuthn) are listed here; adding, renaming and removing them is
  web/routes/passkeys.py.
- Changing factors needs a recent sign-in (ASVS 5.0 V6.2 / V7.5, re-authentication before a
  sensitive change): a session signed in longer ago than ``OSTIARY_REAUTH_SECONDS`` is sent
  to sign in again (``/login?reauth=1``, as OIDC ``prompt=login`` does) and comes back here
  (web/reauth.py).
"""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.accounts.service import LoginThrottled
from ostiary.features.mfa.models import TotpEnrollment
from ostiary.features.mfa.passkeys import credential_key
from ostiary.features.mfa.service import MfaError
from ostiary.features.sessions.models import Session
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.openapi_forms import form_body
from ostiary.web.reauth import reauth_redirect
from ostiary.web.routes.browser import FORM_ERRORS, current_session, render_form, require_csrf

__all__ = ["PAGE", "router"]

router = APIRouter(tags=["browser"])

PAGE = "/account/security"
_NO_STORE = {"Cache-Control": "no-store"}
_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_NOTICES = {
    "totp_removed": "The authenticator app was removed.",
    "passkey_added": "The passkey was added.",
    "passkey_renamed": "The passkey was renamed.",
    "passkey_removed": "The passkey was removed.",
}


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=_NO_STORE)


def _qr_svg(uri: str) -> str:
    # Inline SVG: no script and no image request, so it fits the pages' CSP. A white
    # background keeps it scannable on a dark theme; level M corrects 15% damage.
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff"))


def _setup_page(
    request: Request, enrollment: TotpEnrollment, error: str = "", status_code: int = 200
) -> Response:
    return render_form(
        request,
        "mfa_totp_setup.html",
        status_code=status_code,
        qr_svg=_qr_svg(enrollment.uri),
        uri=enrollment.uri,
        secret=enrollment.secret,
        error=error,
    )


def _codes_page(request: Request, codes: list[str], *, first: bool) -> Response:
    return render_form(request, "mfa_recovery_codes.html", codes=codes, first=first)


async def _form_session(request: Request) -> tuple[dict[str, str], Session, User]:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    return form, *found


def _reauth_redirect(request: Request, session: Session, user: User) -> Response | None:
    """To the sign-in form when the session's last sign-in is too old (web/reauth.py)."""
    return reauth_redirect(request, session, user, back_to=PAGE)


@router.get(
    PAGE,
    summary="Your second factors: passkeys, authenticator app and recovery codes",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Not signed in: to /login"}},
)
async def security_page(request: Request) -> Response:
    found = await current_session(request)
    if found is None:
        return _redirect(f"/login?next={PAGE}")
    user = found[1]
    rt = runtime_of(request)
    async with rt.unit() as unit:
        factors = await unit.mfa.factors(user.id)
        pending = not factors.totp and await unit.mfa.pending_totp(user.id, user.email)
        passkeys = await unit.passkeys.list(user.id)
    notice = _NOTICES.get(request.query_params.get("notice", ""), "")
    return render_form(
        request,
        "mfa_security.html",
        factors=factors,
        pending=bool(pending),
        notice=notice,
        passkeys=[
            {
                "key": credential_key(p.credential_id),
                "name": p.name,
                "synced": p.backup_eligible,
                "created_at": p.created_at,
                "last_used_at": p.last_used_at,
            }
            for p in passkeys
        ],
        passkeys_on=rt.relying_party is not None,
    )


@router.post(
    f"{PAGE}/totp/start",
    summary="Start setting up an authenticator app (a new secret)",
    response_class=Response,
    openapi_extra=form_body("csrf_token"),
    responses={**FORM_ERRORS, 303: {"description": "To the set-up page, or to sign in again"}},
)
async def start_totp(request: Request) -> Response:
    _form, session, user = await _form_session(request)
    if (again := _reauth_redirect(request, session, user)) is not None:
        return again
    async with runtime_of(request).unit() as unit:
        try:
            await unit.mfa.start_totp(user.id, user.email)
        except MfaError as exc:
            raise PageError(409, str(exc)) from exc
    return _redirect(f"{PAGE}/totp")


@router.get(
    f"{PAGE}/totp",
    summary="The authenticator app being set up: QR code, secret and code field",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Nothing being set up, or not signed in"}},
)
async def totp_setup_page(request: Request) -> Response:
    found = await current_session(request)
    if found is None:
        return _redirect(f"/login?next={PAGE}")
    user = found[1]
    async with runtime_of(request).unit() as unit:
        enrollment = await unit.mfa.pending_totp(user.id, user.email)
    if enrollment is None:
        return _redirect(PAGE)
    return _setup_page(request, enrollment)


@router.post(
    f"{PAGE}/totp/confirm",
    summary="Confirm the authenticator app with a code from it; shows the recovery codes once",
    response_class=Response,
    openapi_extra=form_body("csrf_token", "code"),
    responses={**FORM_ERRORS, 200: _HTML, 409: _HTML, 429: _HTML},
)
async def confirm_totp(request: Request) -> Response:
    form, _session, user = await _form_session(request)
    code = form.get("code", "")[:64]
    failure: MfaError | LoginThrottled | None = None
    async with runtime_of(request).unit() as unit:
        # Failures are caught inside the unit, so that their audit events are committed.
        try:
            codes = await unit.mfa.confirm_totp(user.id, code, ip=client_ip(request))
        except (MfaError, LoginThrottled) as exc:
            failure = exc
            enrollment = await unit.mfa.pending_totp(user.id, user.email)
    if isinstance(failure, LoginThrottled):
        raise PageError(429, str(failure), headers={"Retry-After": str(failure.retry_after)})
    if failure is not None:
        if enrollment is None:
            raise PageError(409, str(failure))
        return _setup_page(request, enrollment, str(failure), 400)
    return _codes_page(request, codes, first=True)


@router.post(
    f"{PAGE}/recovery-codes",
    summary="Make new recovery codes (the old ones stop working); shows them once",
    response_class=Response,
    openapi_extra=form_body("csrf_token"),
    responses={**FORM_ERRORS, 200: _HTML, 303: {"description": "Sign in again"}, 409: _HTML},
)
async def regenerate_recovery_codes(request: Request) -> Response:
    _form, session, user = await _form_session(request)
    if (again := _reauth_redirect(request, session, user)) is not None:
        return again
    async with runtime_of(request).unit() as unit:
        try:
            codes = await unit.mfa.regenerate_recovery_codes(user.id)
        except MfaError as exc:
            raise PageError(409, str(exc)) from exc
    return _codes_page(request, codes, first=False)


@router.post(
    f"{PAGE}/totp/remove",
    summary="Remove the authenticator app and its recovery codes",
    response_class=Response,
    openapi_extra=form_body("csrf_token"),
    responses={**FORM_ERRORS, 303: {"description": "Removed, or sign in again"}},
)
async def remove_totp(request: Request) -> Response:
    _form, session, user = await _form_session(request)
    if (again := _reauth_redirect(request, session, user)) is not None:
        return again
    async with runtime_of(request).unit() as unit:
        await unit.mfa.remove_totp(user.id, actor=user.id)
    return _redirect(f"{PAGE}?notice=totp_removed")
