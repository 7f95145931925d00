"""Signing in with a passkey (WebAuthn Level 3 section 7.2): passwordless, and as the second step.

- Passwordless on /login: ``/login/passkey/options`` answers request options with no
  ``allowCredentials`` (discoverable credentials; the browser may offer them in the e-mail
  field's autofill, ``mediation: "conditional"``) and user verification required; the answer
  names its credential and user handle, the credential's owner signs in with ``amr``
  ``["hwk"|"swk", "mfa"]`` (RFC 8176 section 2: a key the user proved to hold, unlocked by a
  PIN or biometric). Failures are throttled per client address like passwords.
- As the second step after a password (web/second_step.py holds the ticket):
  ``/login/second-step/passkey/options`` lists that user's credentials; a valid answer signs in
  with ``["pwd", "hwk"|"swk", "mfa"]`` and spends the ticket, as the code path does; a step-up
  ticket (web/routes/authorize.py) adds the key to the browser's session instead.
- Each ceremony's challenge is the signed, single-use, browser-bound state of
  web/webauthn_state.py; the JSON calls carry the CSRF token in a header (web/routes/
  passkeys.py). A disabled user is refused; a refused or replayed ceremony changes nothing but
  the audit trail and the throttle.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from ostiary.features.accounts.service import LoginThrottled
from ostiary.features.mfa.models import Passkey
from ostiary.features.mfa.service import MfaError
from ostiary.protocol.redirects import safe_local_path
from ostiary.web.deps import client_ip, runtime_of
from ostiary.web.routes.browser import csrf_guard, set_session_cookie, start_session
from ostiary.web.routes.passkeys import (
    JSON_ERRORS,
    CeremonyFailed,
    ceremony_state,
    clear_state,
    credential_of,
    json_error,
    passkeys_off_error,
    read_json,
    set_state,
)
from ostiary.web.routes.second_factor import completed_methods
from ostiary.web.runtime import Runtime
from ostiary.web.second_step import SecondStepTicket, ticket_cookie_name
from ostiary.web.webauthn_state import Purpose

__all__ = ["router"]

router = APIRouter(tags=["browser"])

_NO_STORE = {"Cache-Control": "no-store"}
_JSON: dict[str, Any] = {"content": {"application/json": {}}}
_CSRF_HEADER: dict[str, Any] = {
    "parameters": [
        {"name": "X-CSRF-Token", "in": "header", "required": True, "schema": {"type": "string"}}
    ],
}
_ANSWER_DOC: dict[str, Any] = {
    **_CSRF_HEADER,
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"credential": {"type": "object"}, "next": {"type": "string"}},
                    "required": ["credential"],
                }
            }
        },
    },
}
_REFUSED = "That passkey could not be used to sign in. Try again, or use your password."


def _refused(message: str = _REFUSED) -> CeremonyFailed:
    return CeremonyFailed(401, "refused", message)


def _throttled(exc: LoginThrottled) -> CeremonyFailed:
    return CeremonyFailed(429, "throttled", str(exc), headers={"Retry-After": str(exc.retry_after)})


def _options_response(
    rt: Runtime, request: Request, options: str, purpose: Purpose, challenge: bytes, user_id: str
) -> Response:
    response = JSONResponse({"publicKey": json.loads(options)}, headers=_NO_STORE)
    set_state(rt, request, response, purpose, challenge, user_id)
    return response


def _require_on(rt: Runtime) -> None:
    if rt.relying_party is None:
        raise passkeys_off_error()


class _Undo(Exception):
    """Raised inside the unit of work: the sign-in is refused and what it wrote rolled back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- passwordless ------------------------------------------------------------------------------


@router.post(
    "/login/passkey/options",
    summary="Start a passwordless sign-in: PublicKeyCredentialRequestOptionsJSON",
    response_class=JSONResponse,
    openapi_extra=_CSRF_HEADER,
    responses={**JSON_ERRORS, 200: _JSON},
)
async def passwordless_options(request: Request) -> Response:
    rt = runtime_of(request)
    try:
        _require_on(rt)
        await read_json(request)
        async with rt.unit() as unit:
            challenge = unit.passkeys.new_challenge()
            options = await unit.passkeys.authentication_options(challenge, None)
        return _options_response(rt, request, options, "authenticate", challenge, "")
    except CeremonyFailed as exc:
        return json_error(exc)


@router.post(
    "/login/passkey",
    summary="Finish a passwordless sign-in with AuthenticationResponseJSON",
    response_class=JSONResponse,
    openapi_extra=_ANSWER_DOC,
    responses={**JSON_ERRORS, 200: _JSON},
)
async def passwordless(request: Request) -> Response:
    rt = runtime_of(request)
    try:
        _require_on(rt)
        body = await read_json(request)
        state = ceremony_state(rt, request, "authenticate")
        credential = credential_of(body)
        next_path = safe_local_path(_text(body.get("next")))
        ip = client_ip(request)
        failure: MfaError | LoginThrottled | None = None
        try:
            async with rt.unit() as unit:
                try:
                    passkey = await unit.passkeys.authenticate(
                        credential, state.challenge, user_id=None, ip=ip
                    )
                except (MfaError, LoginThrottled) as exc:  # audited
                    failure = exc
                else:
                    user = await unit.accounts.get_cached(passkey.user_id)
                    if user is None or user.disabled:
                        raise _Undo("user_disabled")
                    if not await unit.spent_tickets.remember(state.spent_key, state.expires_at):
                        raise _Undo("replayed_challenge")
                    amr = _amr(passkey)
                    cookie = await start_session(unit, request, user.id, amr)
                    await unit.accounts.record_sign_in(user.id, amr, ip=ip)
        except _Undo as undo:
            await _audit_refusal(rt, "login.passkey", undo.reason, ip)
            raise _refused() from None
        if isinstance(failure, LoginThrottled):
            raise _throttled(failure)
        if failure is not None:
            raise _refused()
    except CeremonyFailed as exc:
        return json_error(exc)
    response = JSONResponse({"redirect": next_path}, headers=_NO_STORE)
    clear_state(rt, response)
    set_session_cookie(rt, response, cookie)
    return response


def _amr(passkey: Passkey) -> list[str]:
    """RFC 8176 section 2 (protocol/oidc.py maps these to the ``phr``/``phrh`` acr)."""
    return [passkey.amr, "mfa"]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def _audit_refusal(rt: Runtime, action: str, reason: str, ip: str | None) -> None:
    async with rt.unit() as unit:
        await unit.audit.record(action, "failure", ip=ip, details={"reason": reason})


# -- the second step after a password ----------------------------------------------------------


def _ticket(rt: Runtime, request: Request) -> SecondStepTicket:
    browser = request.cookies.get(csrf_guard(request).cookie_name)
    value = request.cookies.get(ticket_cookie_name(rt.settings.sessions.cookie_secure))
    ticket = rt.second_step.read(value, now=rt.clock.now(), browser=browser)
    if ticket is None:
        raise CeremonyFailed(
            401, "signed_out", "This sign-in expired. Start again.", redirect="/login"
        )
    return ticket


@router.post(
    "/login/second-step/passkey/options",
    summary="Second step with a passkey: PublicKeyCredentialRequestOptionsJSON",
    response_class=JSONResponse,
    openapi_extra=_CSRF_HEADER,
    responses={**JSON_ERRORS, 200: _JSON},
)
async def second_step_options(request: Request) -> Response:
    rt = runtime_of(request)
    try:
        _require_on(rt)
        await read_json(request)
        ticket = _ticket(rt, request)
        async with rt.unit() as unit:
            challenge = unit.passkeys.new_challenge()
            options = await unit.passkeys.authentication_options(challenge, ticket.user_id)
        return _options_response(rt, request, options, "second-step", challenge, ticket.user_id)
    except CeremonyFailed as exc:
        return json_error(exc)


@router.post(
    "/login/second-step/passkey",
    summary="Finish a sign-in's second step with AuthenticationResponseJSON",
    response_class=JSONResponse,
    openapi_extra=_ANSWER_DOC,
    responses={**JSON_ERRORS, 200: _JSON},
)
async def second_step(request: Request) -> Response:
    rt = runtime_of(request)
    try:
        _require_on(rt)
        body = await read_json(request)
        ticket = _ticket(rt, request)
        state = ceremony_state(rt, request, "second-step")
        next_path = safe_local_path(_text(body.get("next")))
        if state.user_id != ticket.user_id:  # a ceremony of an earlier sign-in in this browser
            raise CeremonyFailed(400, "no_ceremony", "This passkey request expired. Try again.")
        credential = credential_of(body)
        ip = client_ip(request)
        failure: MfaError | LoginThrottled | None = None
        try:
            async with rt.unit() as unit:
                user = await unit.accounts.get_cached(ticket.user_id)
                if user is None or user.disabled:
                    raise CeremonyFailed(
                        401,
                        "signed_out",
                        "This sign-in expired. Start again.",
                        redirect="/login?" + urlencode({"next": next_path}),
                    )
                try:
                    passkey = await unit.passkeys.authenticate(
                        credential, state.challenge, user_id=user.id, ip=ip
                    )
                except (MfaError, LoginThrottled) as exc:  # audited
                    failure = exc
                else:
                    # A sign-in: pwd + the key + mfa; a step-up (the ticket names this
                    # browser's session): the session's methods + the key.
                    methods = await completed_methods(unit, request, ticket, (passkey.amr,))
                    if methods is None:
                        raise _Undo("session_gone")
                    spent = [
                        await unit.spent_tickets.remember(ticket.spent_key, ticket.expires_at),
                        await unit.spent_tickets.remember(state.spent_key, state.expires_at),
                    ]
                    if not all(spent):
                        raise _Undo("replayed_ticket")
                    cookie = await start_session(unit, request, user.id, *methods)
                    await unit.accounts.record_sign_in(user.id, methods[0], ip=ip)
        except _Undo as undo:
            await _audit_refusal(rt, "mfa.passkey.verify", undo.reason, ip)
            raise CeremonyFailed(
                401,
                "signed_out",
                "This sign-in expired. Start again.",
                redirect="/login?" + urlencode({"next": next_path}),
            ) from None
        if isinstance(failure, LoginThrottled):
            raise _throttled(failure)
        if failure is not None:
            raise _refused("That passkey could not be verified. Try again.")
    except CeremonyFailed as exc:
        return json_error(exc)
    response = JSONResponse({"redirect": next_path}, headers=_NO_STORE)
    response.delete_cookie(
        ticket_cookie_name(rt.settings.sessions.cookie_secure),
        path="/",
        secure=rt.settings.sessions.cookie_secure,
        httponly=True,
    )
    clear_state(rt, response)
    set_session_cookie(rt, response, cookie)
    return response
