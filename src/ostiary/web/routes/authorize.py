"""Authorization endpoint, consent page and RP-initiated logout (browser side of OAuth/OIDC).

- RFC 6749 section 3.1 / 4.1.1 (GET and POST), section 4.1.2.1 (errors: never redirect to an
  unverified redirect URI; otherwise redirect with ``error`` and ``state``).
- RFC 9207: every authorization response carries ``iss``.
- OpenID Connect Core 1.0 section 3.1.2.1: ``prompt`` (none, login, consent, select_account),
  ``max_age``, ``login_hint``; section 3.1.2.6: ``login_required``, ``consent_required``.
  A browser holds one session, so ``select_account`` offers that account or a sign-in with
  another; signing in is itself the choice.
- OpenID Connect RP-Initiated Logout 1.0 section 2/3: ``id_token_hint``,
  ``post_logout_redirect_uri`` (exact match), ``state``, ``client_id``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.oauth.authorize import (
    AuthorizationError,
    AuthorizationRequest,
    UntrustedAuthorizationRequest,
    redirect_with,
    validate_authorization_request,
)
from ostiary.features.sessions.models import Session
from ostiary.protocol.forms import FormError, parse_form
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.pages import render
from ostiary.web.routes.browser import (
    FORM_ERRORS,
    clear_session_cookie,
    render_form,
    require_csrf,
    signed_in,
)
from ostiary.web.runtime import Unit

router = APIRouter(tags=["oauth"])

_SCOPE_TEXT = {
    "openid": "Sign you in with your Ostiary account",
    "profile": "See your name",
    "email": "See your e-mail address",
    "offline_access": "Stay signed in to the application when you are away",
}
_AUTH_AFTER = "_ost_auth_after"  # our own marker added to the return URL, see _needs_login
_CHOSEN = "_ost_account_chosen"  # our own marker: the user chose the signed-in account
_MARKERS = (_AUTH_AFTER, _CHOSEN)


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _issuer(unit: Unit) -> str:
    return unit.settings.issuer or ""


def _error_redirect(unit: Unit, error: AuthorizationError) -> Response:
    params = {"error": error.error, "error_description": error.description, "iss": _issuer(unit)}
    if error.state:
        params["state"] = error.state
    return _redirect(redirect_with(error.redirect_uri, params))


def _signed_in_since_asked(session: Session, params: dict[str, str]) -> bool:
    """The session's sign-in happened after we sent the user to sign in (the marker)."""
    after = params.get(_AUTH_AFTER, "")
    return after.isdigit() and session.auth_time.timestamp() >= int(after)


def _needs_login(
    request: AuthorizationRequest, session: Session, now: float, params: dict[str, str]
) -> bool:
    """prompt=login and max_age force a fresh sign-in; the marker stops a login loop."""
    if _signed_in_since_asked(session, params):
        return False
    if "login" in request.prompt:
        return True
    auth_time = session.auth_time.timestamp()
    return request.max_age is not None and now - auth_time > request.max_age


def _without_markers(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in _MARKERS}


def _login_url(params: dict[str, str], now: float, force: bool) -> str:
    back = _without_markers(params)
    if force:
        back[_AUTH_AFTER] = str(int(now))
    target = "/authorize?" + urlencode(back)
    query: dict[str, str] = {"next": target}
    if params.get("login_hint"):
        query["login_hint"] = params["login_hint"]
    if force:
        query["reauth"] = "1"
    return "/login?" + urlencode(query)


def _select_account_page(
    auth: AuthorizationRequest, email: str, params: dict[str, str], now: float
) -> Response:
    """prompt=select_account for a signed-in browser: this account, or sign in with another."""
    chosen = {**_without_markers(params), _CHOSEN: "1"}
    return render(
        "select_account.html",
        client=auth.client,
        email=email,
        continue_url="/authorize?" + urlencode(chosen),
        switch_url=_login_url(params, now, force=True),
    )


async def _params(request: Request) -> tuple[dict[str, str], tuple[str, ...]]:
    if request.method == "POST":
        body = await request.body()
        raw = body.decode("utf-8", errors="strict")
    else:
        raw = request.url.query
    pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=64)
    resources = tuple(v for k, v in pairs if k == "resource")
    try:
        form = parse_form(raw.encode()) if raw else {}
    except FormError:
        # RFC 8707 lets "resource" repeat; every other parameter must be unique.
        others = urlencode([(k, v) for k, v in pairs if k != "resource"]).encode()
        try:
            form = parse_form(others)
        except FormError as exc:
            raise PageError(400, f"Malformed authorization request: {exc}.") from exc
        if resources:
            form["resource"] = resources[0]
    return form, resources


async def _authorize(request: Request) -> Response:
    rt = runtime_of(request)
    try:
        params, resources = await _params(request)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PageError(400, "Malformed authorization request.") from exc
    now = rt.clock.now().timestamp()
    async with rt.unit() as unit:
        client = await unit.clients.get(params.get("client_id", ""))
        try:
            auth = validate_authorization_request(params, client, resources_multi=resources)
        except UntrustedAuthorizationRequest as exc:
            raise PageError(400, str(exc)) from exc
        except AuthorizationError as exc:
            return _error_redirect(unit, exc)
        found = await signed_in(unit, request)
        reauthenticate = found is not None and _needs_login(auth, found[0], now, params)
        if found is None or reauthenticate:
            if "none" in auth.prompt:
                return _error_redirect(
                    unit,
                    AuthorizationError(
                        "login_required",
                        "The user is not signed in.",
                        redirect_uri=auth.redirect_uri,
                        state=auth.state,
                    ),
                )
            return _redirect(_login_url(params, now, force=reauthenticate))
        session, user = found
        account_chosen = params.get(_CHOSEN) == "1" or _signed_in_since_asked(session, params)
        if "select_account" in auth.prompt and not account_chosen:
            return _select_account_page(auth, user.email, params, now)
        if await unit.oauth.needs_consent(user.id, auth) or "consent" in auth.prompt:
            if "none" in auth.prompt:
                return _error_redirect(
                    unit,
                    AuthorizationError(
                        "consent_required",
                        "The user has not approved this application.",
                        redirect_uri=auth.redirect_uri,
                        state=auth.state,
                    ),
                )
            return _consent_page(request, auth, params)
        return await _issue(unit, auth, session)


async def _issue(unit: Unit, auth: AuthorizationRequest, session: Session) -> Response:
    code = await unit.oauth.issue_code(auth, session)
    params = {"code": code, "iss": _issuer(unit)}
    if auth.state:
        params["state"] = auth.state
    return _redirect(redirect_with(auth.redirect_uri, params))


def _consent_page(request: Request, auth: AuthorizationRequest, params: dict[str, str]) -> Response:
    scopes = [(s, _SCOPE_TEXT.get(s, f"Use the “{s}” permission")) for s in auth.scopes]
    return render_form(
        request,
        "consent.html",
        client=auth.client,
        scopes=scopes,
        request_query=urlencode(_without_markers(params)),
    )


_AUTHORIZE_DOC: dict[str, Any] = {
    "summary": "Authorization endpoint (RFC 6749 section 3.1; code flow with PKCE S256)",
    "response_class": Response,
    "responses": {
        200: {"description": "Consent page", "content": {"text/html": {}}},
        303: {"description": "Redirect to the client, or to sign-in"},
        413: {"description": "Body too large"},
        400: {
            "description": "Untrusted request (unknown client or redirect URI): an HTML page "
            "for browsers, JSON otherwise",
            "content": {"text/html": {}, "application/json": {}},
        },
    },
}


def _query(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names
    ]


_AUTHORIZE_PARAMS = _query(
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "resource",
)


@router.get("/authorize", **_AUTHORIZE_DOC, openapi_extra={"parameters": _AUTHORIZE_PARAMS})
async def authorize_get(request: Request) -> Response:
    return await _authorize(request)


@router.post(
    "/authorize",
    **_AUTHORIZE_DOC,
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        }
    },
)
async def authorize_post(request: Request) -> Response:
    return await _authorize(request)


@router.post(
    "/authorize/consent",
    summary="Approve or deny an authorization request",
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "csrf_token": {"type": "string"},
                            "request": {"type": "string"},
                            "decision": {"type": "string", "enum": ["allow", "deny"]},
                        },
                        "required": ["csrf_token", "request", "decision"],
                    }
                }
            },
        }
    },
    responses={**FORM_ERRORS, 303: {"description": "Back to the client"}},
)
async def consent(request: Request) -> Response:
    rt = runtime_of(request)
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    try:
        params = parse_form(form.get("request", "").encode())
    except FormError as exc:
        raise PageError(400, "Malformed authorization request.") from exc
    async with rt.unit() as unit:
        client = await unit.clients.get(params.get("client_id", ""))
        try:
            auth = validate_authorization_request(params, client)
        except UntrustedAuthorizationRequest as exc:
            raise PageError(400, str(exc)) from exc
        except AuthorizationError as exc:
            return _error_redirect(unit, exc)
        found = await signed_in(unit, request)
        if found is None:
            raise PageError(401, "Your session has ended. Sign in again.")
        session, user = found
        if form.get("decision") != "allow":
            await unit.audit.record(
                "consent.deny",
                "success",
                actor=user.id,
                target=auth.client.client_id,
                ip=client_ip(request),
            )
            return _error_redirect(
                unit,
                AuthorizationError(
                    "access_denied",
                    "The user denied the request.",
                    redirect_uri=auth.redirect_uri,
                    state=auth.state,
                ),
            )
        await unit.oauth.grant_consent(user.id, auth.client, auth.scopes)
        await unit.audit.record(
            "consent.grant",
            "success",
            actor=user.id,
            target=auth.client.client_id,
            ip=client_ip(request),
            details={"scope": auth.scope},
        )
        return await _issue(unit, auth, session)


@router.post(
    "/account/apps/{client_id}/revoke",
    summary="Withdraw an application's access (revokes its tokens)",
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"csrf_token": {"type": "string"}},
                        "required": ["csrf_token"],
                    }
                }
            },
        }
    },
    responses={
        **FORM_ERRORS,
        303: {"description": "Withdrawn"},
        404: {"content": {"text/html": {}}},
    },
)
async def withdraw(request: Request, client_id: str) -> Response:
    rt = runtime_of(request)
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    if not client_id.isprintable() or len(client_id) > 128:
        raise PageError(404, "That application has no access to withdraw.")
    async with rt.unit() as unit:
        found = await signed_in(unit, request)
        if found is None:
            raise PageError(401, "Your session has ended. Sign in again.")
        if not await unit.oauth.withdraw_consent(found[1].id, client_id):
            raise PageError(404, "That application has no access to withdraw.")
        await unit.audit.record(
            "consent.withdraw",
            "success",
            actor=found[1].id,
            target=client_id[:128],
            ip=client_ip(request),
        )
    return _redirect("/account?notice=app_revoked")


async def _end_session(request: Request) -> Response:
    rt = runtime_of(request)
    if request.method == "POST":
        params = await read_form(request)
    else:
        try:
            params = parse_form(request.url.query.encode())
        except FormError as exc:
            raise PageError(400, f"Malformed logout request: {exc}.") from exc
    confirmed = params.pop("confirm", None) == "yes"
    async with rt.unit() as unit:
        hint = await unit.oauth.verify_id_token_hint(params.get("id_token_hint", ""))
        if params.get("id_token_hint") and hint is None:
            raise PageError(400, "The id_token_hint is not a valid ID token of this server.")
        client_id = params.get("client_id") or (str(hint["aud"]) if hint else "")
        if hint and params.get("client_id") and params["client_id"] != hint.get("aud"):
            raise PageError(400, "client_id does not match the id_token_hint.")
        client = await unit.clients.get(client_id) if client_id else None
        target = params.get("post_logout_redirect_uri")
        if target and (client is None or target not in client.post_logout_redirect_uris):
            raise PageError(400, "post_logout_redirect_uri is not registered for this client.")
        found = await signed_in(unit, request)
        same_user = bool(found and hint and hint.get("sub") == found[1].id)
        if found is not None and not same_user and not confirmed:
            # Without proof that the RP speaks for this user, ask (RP-Initiated Logout 2).
            return _logout_confirm_page(request, params, client)
        if confirmed:
            require_csrf(request, params.get("csrf_token"))
        if found is not None:
            await unit.sessions.end(found[0], ip=client_ip(request))
    if target:
        extra = {"state": params["state"]} if params.get("state") else {}
        response = _redirect(redirect_with(target, extra) if extra else target)
    else:
        response = render(
            "message.html", title="Signed out", message="You are signed out of Ostiary."
        )
    clear_session_cookie(rt, response)
    return response


def _logout_confirm_page(request: Request, params: dict[str, str], client: Any) -> Response:
    fields = {k: v for k, v in params.items() if k != "csrf_token"}
    return render_form(request, "logout_confirm.html", fields=fields, client=client)


_END_DOC: dict[str, Any] = {
    "summary": "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)",
    "response_class": Response,
    "responses": {
        **FORM_ERRORS,
        200: {"content": {"text/html": {}}},
        303: {"description": "To the client"},
        400: {
            "description": "Invalid logout request",
            "content": {"text/html": {}, "application/json": {}},
        },
    },
}


@router.get(
    "/end_session",
    **_END_DOC,
    openapi_extra={
        "parameters": _query("id_token_hint", "post_logout_redirect_uri", "state", "client_id")
    },
)
async def end_session_get(request: Request) -> Response:
    return await _end_session(request)


@router.post(
    "/end_session",
    **_END_DOC,
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        }
    },
)
async def end_session_post(request: Request) -> Response:
    return await _end_session(request)
