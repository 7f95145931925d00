"""The signed-in user's passkeys on ``/account/security``: add, rename, remove (WebAuthn Level 3).

- Adding one is a ceremony in two JSON calls made by web/static/webauthn.js: ``.../options``
  answers ``PublicKeyCredentialCreationOptionsJSON`` and sets the signed challenge state
  (web/webauthn_state.py, purpose ``register``, bound to this user and browser); ``.../verify``
  takes the name and ``RegistrationResponseJSON``, checks it against that state (never against
  a challenge the client sends), spends the state and stores the credential. A first factor
  comes with recovery codes, answered once in the JSON for the script to show.
- The JSON calls carry the CSRF token in an ``X-CSRF-Token`` header, checked by the same
  :class:`~ostiary.web.csrf.CsrfGuard` as forms (OWASP CSRF Prevention Cheat Sheet, custom
  request header); rename and remove are plain forms with the token in the body.
- Every change needs a recent sign-in (the re-authentication gate of /account/security, ASVS
  5.0 V6.2 / V7.5) and is audited by features/mfa/passkeys.py.
- Bad input is a 4xx with a clear JSON message, never a 500; a refused ceremony stores nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.mfa.passkeys import MAX_NAME_LEN, UnknownPasskey
from ostiary.features.mfa.service import MfaError
from ostiary.features.sessions.models import Session
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.openapi_forms import form_body
from ostiary.web.reauth import needs_reauth, reauth_redirect
from ostiary.web.routes.browser import FORM_ERRORS, csrf_guard, current_session, require_csrf
from ostiary.web.routes.mfa_settings import PAGE
from ostiary.web.runtime import Runtime
from ostiary.web.webauthn_state import (
    STATE_TTL_SECONDS,
    CeremonyState,
    Purpose,
    state_cookie_name,
)

__all__ = [
    "JSON_ERRORS",
    "CeremonyFailed",
    "ceremony_state",
    "clear_state",
    "credential_of",
    "json_error",
    "passkeys_off_error",
    "read_json",
    "router",
    "set_state",
]

router = APIRouter(tags=["browser"])

MAX_JSON_BYTES = 64 * 1024  # a registration response is a few KiB; attestation certs fit
CSRF_HEADER = "x-csrf-token"
_NO_STORE = {"Cache-Control": "no-store"}
_JSON: dict[str, Any] = {"content": {"application/json": {}}}
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON, or no ceremony under way", **_JSON},
    401: {"description": "Signed out, sign in again, or the passkey was refused", **_JSON},
    403: {"description": "CSRF check failed", **_JSON},
    404: {"description": "Passkeys are off on this server", **_JSON},
    413: {"description": "Body too large"},
    415: {"description": "Not application/json", **_JSON},
    429: {"description": "Too many failed attempts", **_JSON},
}
_OPTIONS_DOC: dict[str, Any] = {
    "parameters": [
        {"name": "X-CSRF-Token", "in": "header", "required": True, "schema": {"type": "string"}}
    ],
}


class CeremonyFailed(Exception):
    """A JSON call refused before or during a ceremony; becomes :func:`json_error`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        redirect: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.redirect = redirect
        self.headers = headers or {}


def json_error(exc: CeremonyFailed) -> JSONResponse:
    body: dict[str, str] = {"error": exc.code, "error_description": exc.message}
    if exc.redirect:
        body["redirect"] = exc.redirect
    return JSONResponse(body, status_code=exc.status_code, headers={**_NO_STORE, **exc.headers})


def passkeys_off_error() -> CeremonyFailed:
    return CeremonyFailed(404, "passkeys_off", "Passkeys are not available on this server.")


async def read_json(request: Request, *, check_csrf: bool = True) -> dict[str, Any]:
    """The JSON object body of a ceremony call, CSRF-checked (header); CeremonyFailed if not."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise CeremonyFailed(415, "unsupported_media_type", "Send the body as application/json.")
    if check_csrf and not csrf_guard(request).is_valid(request, request.headers.get(CSRF_HEADER)):
        raise CeremonyFailed(403, "csrf", "This page expired. Reload it and try again.")
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise CeremonyFailed(413, "too_large", "The request is too large.")
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise CeremonyFailed(400, "malformed", "The request is not valid JSON.") from None
    if not isinstance(body, dict):
        raise CeremonyFailed(400, "malformed", "The request must be a JSON object.")
    return body


def credential_of(body: dict[str, Any]) -> dict[str, Any]:
    credential = body.get("credential")
    if not isinstance(credential, dict):
        raise CeremonyFailed(400, "malformed", "The request has no passkey response.")
    return credential


def _browser(request: Request) -> str | None:
    return request.cookies.get(csrf_guard(request).cookie_name)


def set_state(
    rt: Runtime,
    request: Request,
    response: Response,
    purpose: Purpose,
    challenge: bytes,
    user_id: str,
) -> None:
    """The signed challenge state of a ceremony starting now, in this browser's cookie."""
    browser = _browser(request)
    if browser is None:  # the page that holds the button set it; a script without it gets none
        raise CeremonyFailed(403, "csrf", "This page expired. Reload it and try again.")
    value = rt.webauthn_states.issue(
        purpose, challenge, user_id, now=rt.clock.now(), browser=browser
    )
    response.set_cookie(
        state_cookie_name(rt.settings.sessions.cookie_secure),
        value,
        max_age=STATE_TTL_SECONDS,
        httponly=True,
        secure=rt.settings.sessions.cookie_secure,
        samesite="strict",
        path="/",
    )


def ceremony_state(rt: Runtime, request: Request, purpose: Purpose) -> CeremonyState:
    cookie = request.cookies.get(state_cookie_name(rt.settings.sessions.cookie_secure))
    state = rt.webauthn_states.read(cookie, purpose, now=rt.clock.now(), browser=_browser(request))
    if state is None:
        raise CeremonyFailed(400, "no_ceremony", "This passkey request expired. Try again.")
    return state


def clear_state(rt: Runtime, response: Response) -> None:
    response.delete_cookie(
        state_cookie_name(rt.settings.sessions.cookie_secure),
        path="/",
        secure=rt.settings.sessions.cookie_secure,
        httponly=True,
        samesite="strict",
    )


class StateSpent(Exception):
    """Raised inside the unit of work so that what the replayed ceremony did is rolled back."""


async def _signed_in_for_change(request: Request) -> tuple[Runtime, Session, User]:
    rt = runtime_of(request)
    if rt.relying_party is None:
        raise passkeys_off_error()
    found = await current_session(request)
    if found is None:
        raise CeremonyFailed(
            401, "signed_out", "Your session has ended. Sign in again.", redirect="/login"
        )
    session, user = found
    if needs_reauth(request, session):
        query = urlencode({"next": PAGE, "reauth": "1", "login_hint": user.email})
        raise CeremonyFailed(
            401,
            "reauthenticate",
            "Sign in again to change your passkeys.",
            redirect=f"/login?{query}",
        )
    return rt, session, user


@router.post(
    f"{PAGE}/passkeys/options",
    summary="Start adding a passkey: PublicKeyCredentialCreationOptionsJSON",
    response_class=JSONResponse,
    openapi_extra=_OPTIONS_DOC,
    responses={**JSON_ERRORS, 200: _JSON},
)
async def registration_options(request: Request) -> Response:
    try:
        await read_json(request)
        rt, _session, user = await _signed_in_for_change(request)
        async with rt.unit() as unit:
            challenge = unit.passkeys.new_challenge()
            options = await unit.passkeys.registration_options(
                user.id, user.email, user.name, challenge
            )
        response = JSONResponse({"publicKey": json.loads(options)}, headers=_NO_STORE)
        set_state(rt, request, response, "register", challenge, user.id)
    except CeremonyFailed as exc:
        return json_error(exc)
    return response


@router.post(
    f"{PAGE}/passkeys/verify",
    summary="Finish adding a passkey: its name and RegistrationResponseJSON",
    response_class=JSONResponse,
    openapi_extra={
        **_OPTIONS_DOC,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "maxLength": MAX_NAME_LEN},
                            "credential": {"type": "object"},
                        },
                        "required": ["name", "credential"],
                    }
                }
            },
        },
    },
    responses={**JSON_ERRORS, 200: _JSON},
)
async def register(request: Request) -> Response:
    try:
        body = await read_json(request)
        rt, _session, user = await _signed_in_for_change(request)
        state = ceremony_state(rt, request, "register")
        if state.user_id != user.id:  # started by another account in this browser
            raise CeremonyFailed(400, "no_ceremony", "This passkey request expired. Try again.")
        name = body.get("name")
        credential = credential_of(body)
        if not isinstance(name, str):
            raise CeremonyFailed(400, "malformed", "Give the passkey a name.")
        return await _register(rt, request, user, state, name[:256], credential)
    except CeremonyFailed as exc:
        return json_error(exc)


async def _register(
    rt: Runtime,
    request: Request,
    user: User,
    state: CeremonyState,
    name: str,
    credential: dict[str, Any],
) -> Response:
    failure: MfaError | None = None
    codes: list[str] | None = None
    try:
        async with rt.unit() as unit:
            try:
                await unit.passkeys.register(
                    user.id, name, credential, state.challenge, ip=client_ip(request)
                )
            except MfaError as exc:  # refused (audited), or a bad name
                failure = exc
            else:
                if not await unit.spent_tickets.remember(state.spent_key, state.expires_at):
                    raise StateSpent
                codes = await unit.mfa.first_recovery_codes(user.id)
    except StateSpent:
        raise CeremonyFailed(
            400, "no_ceremony", "This passkey request expired. Try again."
        ) from None
    if failure is not None:
        raise CeremonyFailed(400, "refused", str(failure))
    response = JSONResponse(
        {"redirect": f"{PAGE}?notice=passkey_added", "recovery_codes": codes or []},
        headers=_NO_STORE,
    )
    clear_state(rt, response)
    return response


# -- rename and remove: plain forms ------------------------------------------------------------


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=_NO_STORE)


async def _form_change(request: Request) -> tuple[dict[str, str], User] | Response:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    session, user = found
    if (again := reauth_redirect(request, session, user, back_to=PAGE)) is not None:
        return again
    return form, user


@router.post(
    f"{PAGE}/passkeys/{{key}}/rename",
    summary="Rename one of your passkeys",
    response_class=Response,
    openapi_extra=form_body("csrf_token", "name"),
    responses={**FORM_ERRORS, 303: {"description": "Renamed, or sign in again"}, 404: {}},
)
async def rename(request: Request, key: str) -> Response:
    found = await _form_change(request)
    if isinstance(found, Response):
        return found
    form, user = found
    async with runtime_of(request).unit() as unit:
        try:
            await unit.passkeys.rename(
                user.id, key, form.get("name", "")[:256], ip=client_ip(request)
            )
        except UnknownPasskey as exc:
            raise PageError(404, str(exc)) from exc
        except MfaError as exc:
            raise PageError(400, str(exc)) from exc
    return _redirect(f"{PAGE}?notice=passkey_renamed")


@router.post(
    f"{PAGE}/passkeys/{{key}}/remove",
    summary="Remove one of your passkeys",
    response_class=Response,
    openapi_extra=form_body("csrf_token"),
    responses={**FORM_ERRORS, 303: {"description": "Removed, or sign in again"}, 404: {}},
)
async def remove(request: Request, key: str) -> Response:
    found = await _form_change(request)
    if isinstance(found, Response):
        return found
    _form, user = found
    async with runtime_of(request).unit() as unit:
        try:
            await unit.passkeys.remove(user.id, key, actor=user.id, ip=client_ip(request))
        except UnknownPasskey as exc:
            raise PageError(404, str(exc)) from exc
        await unit.mfa.drop_orphan_recovery_codes(user.id)
    return _redirect(f"{PAGE}?notice=passkey_removed")
