"""Authorization endpoint, consent page and RP-initiated logout (browser side of OAuth/OIDC).

- RFC 6749 section 3.1 / 4.1.1 (GET and POST), section 4.1.2.1 (errors: never redirect to an
  unverified redirect URI; otherwise redirect with ``error`` and ``state``).
- RFC 9207: every authorization response carries ``iss``; OAuth 2.0 Form Post Response Mode:
  ``response_mode=form_post`` (web/authorization_response.py), kept through sign-in and consent.
- OpenID Connect Core 1.0 section 3.1.2.1: ``prompt`` (none, login, consent, select_account),
  ``max_age``, ``login_hint``, ``id_token_hint``; section 3.1.2.6: ``login_required``,
  ``consent_required``. A browser holds one session, so ``select_account`` offers that account
  or a sign-in with another; signing in is itself the choice. A ``login_hint`` that names
  another user than the signed-in one asks the same question (with ``prompt=none``:
  ``login_required``). The markers that stop the sign-in loop are signed server state
  (web/sign_in_proofs.py), and the consent POST checks the demands again.
- RFC 8707 section 2: ``resource`` may repeat; every value survives sign-in and consent.
- OpenID Connect RP-Initiated Logout 1.0 section 2/3: ``id_token_hint``,
  ``post_logout_redirect_uri`` (exact match), ``state``, ``client_id``. An unregistered
  ``post_logout_redirect_uri`` is never followed: the user is asked, then signed out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User, normalize_email
from ostiary.features.mfa.models import MfaFactors
from ostiary.features.oauth.authorize import (
    AuthorizationError,
    AuthorizationRequest,
    UntrustedAuthorizationRequest,
    redirect_with,
    validate_authorization_request,
)
from ostiary.features.oauth.service import extra_claims
from ostiary.features.sessions.models import Session
from ostiary.protocol.forms import FormError, parse_form
from ostiary.protocol.oidc import (
    ACR_MFA,
    ACR_PHISHING_RESISTANT,
    ACR_VALUES_SUPPORTED,
    acr_for,
    acr_meets,
)
from ostiary.protocol.scopes import MANAGE_SCOPE
from ostiary.web.authorization_response import deliver, record_failure, refused
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError, page_error_response
from ostiary.web.openapi_forms import form_body
from ostiary.web.pages import render
from ostiary.web.routes.browser import (
    FORM_ERRORS,
    clear_session_cookie,
    csrf_guard,
    render_form,
    require_csrf,
    signed_in,
    to_second_step,
)
from ostiary.web.runtime import Unit
from ostiary.web.sign_in_proofs import SignInProofs

router = APIRouter(tags=["oauth"])
log = structlog.get_logger("ostiary.oauth")

_SCOPE_TEXT = {
    "openid": "Sign you in with your Ostiary account",
    "profile": "See your name",
    "email": "See your e-mail address",
    "phone": "See your phone number",
    "address": "See your postal address",
    "offline_access": "Stay signed in to the application when you are away",
    "roles": "See your roles and permissions in your active organization",
    MANAGE_SCOPE: "Manage your organizations, their members, roles and groups as you",
}
# Claims asked for one by one (OIDC Core 5.5), beyond those of the requested scopes.
_CLAIM_TEXT = {
    "name": "your name",
    "given_name": "your given name",
    "family_name": "your family name",
    "middle_name": "your middle name",
    "nickname": "your nickname",
    "preferred_username": "your preferred username",
    "picture": "your profile picture",
    "website": "your website",
    "gender": "your gender",
    "birthdate": "your date of birth",
    "zoneinfo": "your time zone",
    "locale": "your language",
    "updated_at": "when your profile last changed",
    "email": "your e-mail address",
    "email_verified": "whether your e-mail address is verified",
    "phone_number": "your phone number",
    "phone_number_verified": "whether your phone number is verified",
    "address": "your postal address",
}
_AUTH_AFTER = "_ost_auth_after"  # our signed marker: the sign-in we asked for (sign_in_proofs)
_CHOSEN = "_ost_account_chosen"  # our signed marker: the user chose the signed-in account
_STEP_UP = "_ost_step_up"  # our signed marker: the step-up we asked for (sign_in_proofs)
_MARKERS = (_AUTH_AFTER, _CHOSEN, _STEP_UP)


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _issuer(unit: Unit) -> str:
    return unit.settings.issuer or ""


async def _error_redirect(
    unit: Unit, request: Request, received: _Received, error: AuthorizationError
) -> Response:
    client_id = received.params.get("client_id")
    return await refused(unit, request, error, client_id=client_id, issuer=_issuer(unit))


async def _refuse(
    unit: Unit, request: Request, auth: AuthorizationRequest, error: str, description: str
) -> Response:
    failure = AuthorizationError(
        error,
        description,
        redirect_uri=auth.redirect_uri,
        state=auth.state,
        response_mode=auth.response_mode,
    )
    return await refused(
        unit, request, failure, client_id=auth.client.client_id, issuer=_issuer(unit)
    )


async def _untrusted(unit: Unit, request: Request, client_id: str | None, message: str) -> Response:
    """Shown, never redirected (RFC 6749 4.1.2.1); answered, not raised, so that the audit
    event of the failure commits."""
    await record_failure(
        unit, request, client_id=client_id, error="invalid_request", description=message
    )
    return page_error_response(request, PageError(400, message))


@dataclass(frozen=True, slots=True)
class _Received:
    """An authorization request as received: the first value of each parameter, every
    ``resource``, and the names of the other parameters that were given more than once."""

    params: dict[str, str]
    resources: tuple[str, ...]
    repeated: tuple[str, ...] = ()

    def pairs(self) -> list[tuple[str, str]]:
        """The request without our markers; ``resource`` may repeat (RFC 8707 section 2)."""
        pairs = [(k, v) for k, v in self.params.items() if k not in _MARKERS and k != "resource"]
        return pairs + [("resource", r) for r in self.resources]

    def query(self, **markers: str) -> str:
        return urlencode(self.pairs() + list(markers.items()))


def _parse_request(raw: str) -> _Received:
    """Parse a query or form (FormError: malformed). A repeated parameter (only ``resource``
    may repeat, RFC 8707 section 2) is noted for validation, which refuses it (RFC 6749 3.1)
    by an error redirect when the client and redirect URI are good."""
    names = frozenset(k for k, _ in parse_qsl(raw, keep_blank_values=True, max_num_fields=64))
    form = parse_form(raw.encode(), repeatable=names)
    repeated = tuple(sorted(n for n in names if n != "resource" and len(form.values_of(n)) > 1))
    return _Received(dict(form), form.values_of("resource"), repeated)


def _proofs(request: Request) -> SignInProofs:
    return SignInProofs(runtime_of(request).authorize_proof_key)


def _session_cookie(unit: Unit, request: Request) -> str | None:
    return request.cookies.get(unit.settings.sessions.cookie_name)


def _login_redirect(
    unit: Unit, request: Request, received: _Received, now: datetime, force: bool
) -> Response:
    """To /login, back to this request with a signed proof that a sign-in was asked for.

    ``force`` shows the form to a browser that is signed in (``reauth=1``). The proof binds
    the browser through its pre-session CSRF cookie, set here if it has none yet.
    """
    guard = csrf_guard(request)
    browser, new_cookie = guard.browser_id(request)
    marker = _proofs(request).demand_sign_in(
        received.pairs(), now=now, browser=browser, session_cookie=_session_cookie(unit, request)
    )
    query: dict[str, str] = {"next": "/authorize?" + received.query(**{_AUTH_AFTER: marker})}
    if received.params.get("login_hint"):
        query["login_hint"] = received.params["login_hint"]
    if force:
        query["reauth"] = "1"
    response = _redirect("/login?" + urlencode(query))
    guard.set_cookie(response, new_cookie)
    return response


async def _id_token_hint(
    unit: Unit, request: Request, auth: AuthorizationRequest, params: dict[str, str]
) -> dict[str, Any] | Response | None:
    """OIDC Core 3.1.2.1 ``id_token_hint``: the claims of an ID token we issued to this client
    (expired ones too: it names a past sign-in), an error redirect if it is anything else."""
    raw = params.get("id_token_hint")
    if not raw:
        return None
    claims = await unit.oauth.verify_id_token_hint(raw)
    aud = claims.get("aud") if claims else None
    audiences = aud if isinstance(aud, list) else [aud]
    if claims is None or auth.client.client_id not in audiences or not claims.get("sub"):
        return await _refuse(
            unit,
            request,
            auth,
            "invalid_request",
            "id_token_hint is not an ID token this server issued to this client.",
        )
    return claims


async def _sign_in_gate(
    unit: Unit, request: Request, auth: AuthorizationRequest, received: _Received
) -> tuple[Session, User] | Response:
    """The signed-in session this request may use, or where the browser must go first.

    OIDC Core 3.1.2.1: a sign-in is asked when there is none, for ``prompt=login``, when the
    last one is older than ``max_age`` and when ``id_token_hint`` names another user; a
    signed proof (sign_in_proofs.py) that the browser signed in anew for this very request
    stops the loop. With ``prompt=none`` each of these is ``login_required`` (3.1.2.6). A
    sign-in made for this request that is still not the hinted user is ``login_required``
    too: never a code for another user than the one the client named.
    ``prompt=select_account``: signing in for this request, or a signed choice, is the choice.
    """
    now = runtime_of(request).clock.now()
    hint = await _id_token_hint(unit, request, auth, received.params)
    if isinstance(hint, Response):
        return hint
    found = await signed_in(unit, request)
    proofs = _proofs(request)
    cookie = _session_cookie(unit, request)
    fresh = found is not None and proofs.signed_in_since(
        received.params.get(_AUTH_AFTER),
        received.pairs(),
        now=now,
        browser=request.cookies.get(csrf_guard(request).cookie_name),
        session_cookie=cookie,
        auth_time=found[0].auth_time,
    )
    wrong_user = hint is not None and found is not None and hint["sub"] != found[1].id
    if fresh and wrong_user:
        return await _refuse(
            unit, request, auth, "login_required", "The user signed in is not the one named."
        )
    stale = found is not None and (
        "login" in auth.prompt
        or (
            auth.max_age is not None
            and now.timestamp() - found[0].auth_time.timestamp() > auth.max_age
        )
    )
    if found is None or (not fresh and (stale or wrong_user)):
        if "none" in auth.prompt:
            why = "not the one named" if found is not None and wrong_user else "not signed in"
            return await _refuse(unit, request, auth, "login_required", f"The user is {why}.")
        return _login_redirect(unit, request, received, now, force=found is not None)
    session, user = found
    chosen = fresh or proofs.account_chosen(
        received.params.get(_CHOSEN), received.pairs(), now=now, session_cookie=cookie
    )
    switch = _hints_another_user(auth, user)
    if switch and not chosen and "none" in auth.prompt:
        return await _refuse(
            unit, request, auth, "login_required", "login_hint names another user."
        )
    if ("select_account" in auth.prompt or switch) and not chosen:
        return _select_account_page(unit, request, auth, user.email, received, now)
    step_up = await _acr_gate(unit, request, auth, received, found)
    if step_up is not None:
        return step_up
    return session, user


async def _acr_gate(
    unit: Unit,
    request: Request,
    auth: AuthorizationRequest,
    received: _Received,
    found: tuple[Session, User],
) -> Response | None:
    """The ``acr`` a client asks for, and the one ``OSTIARY_MFA_REQUIRED`` asks of everyone.

    A session below the class asked for steps up when the user holds a factor that reaches it:
    the browser is asked for that factor only (the second-step page, with a ticket naming this
    session: web/second_step.py), not for the whole sign-in again, and comes back with a
    signed marker (``_ost_step_up``, sign_in_proofs.py) so that it is asked once per request.
    When the class stays out of reach: an essential request (OIDC Core 5.5.1.1) fails with
    ``unmet_authentication_requirements``; a voluntary one (``acr_values``, 3.1.2.1, or a
    claim that is not essential) goes on, and the token carries the class achieved. With
    ``OSTIARY_MFA_REQUIRED`` a user without a factor is sent to set one up.

    An org-scoped client (README "Org-scoped clients") needs the user's active organization
    (a page says to choose one when there is none); when that organization requires an acr
    (``orgs update --require-acr``), the request is treated as an essential request for it,
    and a user without a factor that reaches it is told to set one up.
    """
    wanted, essential = auth.requested_acr()
    session, user = found
    achieved = acr_for(session.amr)
    known = [value for value in wanted if value in ACR_VALUES_SUPPORTED]
    client_met = not known or any(acr_meets(achieved, value) for value in known)
    org_acr: str | None = None
    if auth.client.org_scoped:
        org = await unit.orgs.active_org(user.id)
        if org is None:
            if "none" in auth.prompt:
                return await _refuse(
                    unit, request, auth, "interaction_required", "No active organization."
                )
            return _org_page(auth, "no_org", status_code=403)
        if org.require_acr and not acr_meets(achieved, org.require_acr):
            org_acr = org.require_acr
            essential = True
    met = client_met and org_acr is None
    required = unit.settings.mfa_required and not acr_meets(achieved, ACR_MFA)
    if met and not required:
        return None
    factors = await unit.mfa.factors(user.id)
    if required and not factors.any:
        if "none" in auth.prompt:
            return await _refuse(
                unit, request, auth, "interaction_required", "A second factor must be set up."
            )
        back = "/authorize?" + received.query()
        return _redirect("/account/security?" + urlencode({"next": back}))
    if not client_met:
        targets = [v for v in known if org_acr is None or acr_meets(v, org_acr)]
        targets = targets or ([org_acr] if org_acr else known)
    else:
        targets = [org_acr] if org_acr else [ACR_MFA]
    target = _reachable_class(targets, factors)
    now = runtime_of(request).clock.now()
    stepped_up = _proofs(request).signed_in_since(
        received.params.get(_STEP_UP),
        received.pairs(),
        now=now,
        browser=request.cookies.get(csrf_guard(request).cookie_name),
        session_cookie=_session_cookie(unit, request),
        auth_time=session.auth_time,
    )
    if target is None and org_acr is not None and not stepped_up:
        if "none" in auth.prompt:
            return await _refuse(
                unit, request, auth, "interaction_required", "A second factor must be set up."
            )
        back = "/authorize?" + received.query()
        return _org_page(
            auth,
            "set_up_factor",
            status_code=403,
            security="/account/security?" + urlencode({"next": back}),
            phishing_resistant=acr_meets(org_acr, ACR_PHISHING_RESISTANT),
        )
    if target is None or stepped_up:
        if not essential and not required:
            return None
        return await _refuse(
            unit,
            request,
            auth,
            "unmet_authentication_requirements",
            "The sign-in does not meet the essential acr values.",
        )
    if "none" in auth.prompt:
        return await _refuse(
            unit, request, auth, "login_required", "A sign-in with a second factor is needed."
        )
    return _step_up_redirect(unit, request, received, session, now, target)


def _org_page(auth: AuthorizationRequest, state: str, status_code: int, **context: Any) -> Response:
    """Why an org-scoped client gets nothing yet: no active organization, or a second factor
    the organization requires that the user has not set up."""
    return render(
        "org_required.html", status_code=status_code, state=state, client=auth.client, **context
    )


def _reachable_class(targets: list[str], factors: MfaFactors) -> str | None:
    """The weakest of ``targets`` a factor of the user reaches: an authenticator app (or a
    recovery code) reaches the multi-factor class, a passkey the phishing-resistant ones."""
    reachable = [
        value
        for value in targets
        if factors.passkeys or (factors.totp and not acr_meets(value, ACR_PHISHING_RESISTANT))
    ]
    return min(reachable, key=ACR_VALUES_SUPPORTED.index) if reachable else None


def _step_up_redirect(
    unit: Unit,
    request: Request,
    received: _Received,
    session: Session,
    now: datetime,
    target: str,
) -> Response:
    """To the second-factor page for this session, back here with a signed step-up marker."""
    browser, _new = csrf_guard(request).browser_id(request)
    marker = _proofs(request).demand_sign_in(
        received.pairs(), now=now, browser=browser, session_cookie=_session_cookie(unit, request)
    )
    back = "/authorize?" + received.query(**{_STEP_UP: marker})
    return to_second_step(
        runtime_of(request), request, session.user_id, back, sid=session.sid, acr=target
    )


def _hints_another_user(auth: AuthorizationRequest, user: User) -> bool:
    """OIDC Core 3.1.2.1 ``login_hint`` (an e-mail address or our ``sub``) names someone else."""
    hint = auth.login_hint
    return bool(hint) and hint != user.id and normalize_email(hint or "") != user.email


def _select_account_page(
    unit: Unit,
    request: Request,
    auth: AuthorizationRequest,
    email: str,
    received: _Received,
    now: datetime,
) -> Response:
    """prompt=select_account for a signed-in browser: this account, or sign in with another."""
    choice = _proofs(request).account_choice(
        received.pairs(), now=now, session_cookie=_session_cookie(unit, request) or ""
    )
    switch = _login_redirect(unit, request, received, now, force=True)
    response = render(
        "select_account.html",
        client=auth.client,
        email=email,
        continue_url="/authorize?" + received.query(**{_CHOSEN: choice}),
        switch_url=switch.headers["location"],
    )
    if "set-cookie" in switch.headers:
        response.headers.append("set-cookie", switch.headers["set-cookie"])
    return response


async def _authorize(request: Request) -> Response:
    rt = runtime_of(request)
    try:
        if request.method == "POST":
            raw = (await request.body()).decode("utf-8", errors="strict")
        else:
            raw = request.url.query
        received: _Received | str = _parse_request(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        received = f"Malformed authorization request: {exc}."
    async with rt.unit() as unit:
        if isinstance(received, str):
            return await _untrusted(unit, request, None, received)
        client_id = received.params.get("client_id", "")
        client = await unit.clients.get(client_id) if len(client_id) <= 128 else None
        try:
            auth = validate_authorization_request(
                received.params,
                client,
                resources_multi=received.resources,
                repeated=received.repeated,
            )
        except UntrustedAuthorizationRequest as exc:
            return await _untrusted(unit, request, client_id, str(exc))
        except AuthorizationError as exc:
            return await _error_redirect(unit, request, received, exc)
        found = await _sign_in_gate(unit, request, auth, received)
        if isinstance(found, Response):
            return found
        session, user = found
        if await unit.oauth.needs_consent(user.id, auth) or "consent" in auth.prompt:
            if "none" in auth.prompt:
                return await _refuse(
                    unit,
                    request,
                    auth,
                    "consent_required",
                    "The user has not approved this application.",
                )
            return _consent_page(request, auth, received)
        return await _issue(unit, auth, session)


async def _issue(unit: Unit, auth: AuthorizationRequest, session: Session) -> Response:
    org_id = None
    if auth.client.org_scoped:
        # Checked by _acr_gate in this transaction; checked again here, where it counts.
        org = await unit.orgs.active_org(session.user_id)
        if org is None or (
            org.require_acr and not acr_meets(acr_for(session.amr), org.require_acr)
        ):
            raise PageError(403, "Your active organization does not allow this sign-in.")
        org_id = org.id
    code = await unit.oauth.issue_code(auth, session, org_id=org_id)
    params = {"code": code, "iss": _issuer(unit)}
    if auth.state:
        params["state"] = auth.state
    return deliver(auth.redirect_uri, params, auth.response_mode)


def _consent_page(request: Request, auth: AuthorizationRequest, received: _Received) -> Response:
    """The form carries the whole request, our signed markers included: the consent POST
    checks the sign-in demands again (OIDC Core 3.1.2.1) before it issues a code."""
    scopes = [(s, _SCOPE_TEXT.get(s, f"Use the “{s}” permission")) for s in auth.scopes]
    scopes += [(f"claim:{c}", f"See {_CLAIM_TEXT[c]}") for c in extra_claims(auth)]
    markers = {k: received.params[k] for k in _MARKERS if k in received.params}
    return render_form(
        request,
        "consent.html",
        client=auth.client,
        scopes=scopes,
        request_query=received.query(**markers),
    )


_AUTHORIZE_DOC: dict[str, Any] = {
    "summary": "Authorization endpoint (RFC 6749 section 3.1; code flow with PKCE S256)",
    "response_class": Response,
    "responses": {
        200: {
            "description": "Consent page, or the response_mode=form_post form",
            "content": {"text/html": {}},
        },
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
    "response_mode",
)


@router.get("/authorize", **_AUTHORIZE_DOC, openapi_extra={"parameters": _AUTHORIZE_PARAMS})
async def authorize_get(request: Request) -> Response:
    return await _authorize(request)


@router.post(
    "/authorize",
    **_AUTHORIZE_DOC,
    openapi_extra=form_body(body_required=False),
)
async def authorize_post(request: Request) -> Response:
    return await _authorize(request)


@router.post(
    "/authorize/consent",
    summary="Approve or deny an authorization request",
    response_class=Response,
    openapi_extra=form_body(
        "csrf_token", "request", "decision", schemas={"decision": {"enum": ["allow", "deny"]}}
    ),
    responses={**FORM_ERRORS, 303: {"description": "Back to the client"}},
)
async def consent(request: Request) -> Response:
    rt = runtime_of(request)
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    try:
        received = _parse_request(form.get("request", ""))
    except ValueError as exc:
        raise PageError(400, "Malformed authorization request.") from exc
    async with rt.unit() as unit:
        client = await unit.clients.get(received.params.get("client_id", ""))
        try:
            auth = validate_authorization_request(
                received.params,
                client,
                resources_multi=received.resources,
                repeated=received.repeated,
            )
        except UntrustedAuthorizationRequest as exc:
            raise PageError(400, str(exc)) from exc
        except AuthorizationError as exc:
            return await _error_redirect(unit, request, received, exc)
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
            return await _refuse(
                unit, request, auth, "access_denied", "The user denied the request."
            )
        # The request's sign-in demands hold here too, not only on the way to this form.
        gate = await _sign_in_gate(unit, request, auth, received)
        if isinstance(gate, Response):
            return gate
        session, user = gate
        await unit.oauth.grant_consent(user.id, auth.client, auth)
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
    openapi_extra=form_body("csrf_token"),
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
        unregistered = bool(target) and (
            client is None or target not in client.post_logout_redirect_uris
        )
        if unregistered:
            # RP-Initiated Logout 3: never redirect there; ask, sign out, stay here.
            log.info(
                "oauth_error",
                endpoint="/end_session",
                error="invalid_request",
                hint="post_logout_redirect_uri is not registered for this client",
                client_id=client.client_id if client else None,
            )
            del params["post_logout_redirect_uri"]
            target = None
        found = await signed_in(unit, request)
        same_user = bool(found and hint and hint.get("sub") == found[1].id)
        if found is not None and (unregistered or not same_user) and not confirmed:
            # Without proof that the RP speaks for this user, ask (RP-Initiated Logout 2).
            return _logout_confirm_page(request, params, client, unregistered=unregistered)
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


def _logout_confirm_page(
    request: Request, params: dict[str, str], client: Any, *, unregistered: bool
) -> Response:
    fields = {k: v for k, v in params.items() if k != "csrf_token"}
    return render_form(
        request, "logout_confirm.html", fields=fields, client=client, unregistered=unregistered
    )


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
    openapi_extra=form_body(body_required=False),
)
async def end_session_post(request: Request) -> Response:
    return await _end_session(request)
