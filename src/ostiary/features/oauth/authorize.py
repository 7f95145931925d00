"""Validation of authorization requests (RFC 6749 section 4.1.1, OAuth 2.1 section 4.1.1,
OpenID Connect Core 1.0 section 3.1.2.1, RFC 7636 section 4.3, RFC 8707 section 2,
OAuth 2.0 Multiple Response Type Encoding Practices section 2.1 and OAuth 2.0 Form Post
Response Mode section 2: ``response_mode`` ``query`` or ``form_post``).

Scopes the client may not have are dropped (RFC 6749 section 3.3, ``granted_scopes``); the
``claims`` parameter (OpenID Connect Core 1.0 section 5.5) is parsed here and kept only on
OpenID requests.

- ``redirect_uri`` may be omitted when the client has exactly one registered (OAuth 2.1
  section 4.1.1), except in an OpenID Connect request, where Core section 3.1.2.1 requires it.
  Whether it was sent is kept with the code: RFC 6749 section 4.1.3 then requires it at /token.
- PKCE per the client's mode (``protocol/pkce.py``: RFC 9700 section 2.1.1); ``plain`` never.

Two kinds of failure, as RFC 6749 section 4.1.2.1 requires:

- the client or the redirect URI cannot be trusted (unknown client, unregistered redirect URI):
  :class:`UntrustedAuthorizationRequest`, shown to the user, NEVER redirected;
- anything else: :class:`AuthorizationError`, sent back to the (verified) redirect URI with
  ``error``, ``state`` and ``iss`` (RFC 9207), in the requested response mode.

A parameter given twice or longer than the limit (RFC 6749 section 3.1: "MUST NOT be included
more than once") is an ``invalid_request`` error redirect once the client and its redirect URI
are known good; when ``client_id`` or ``redirect_uri`` is the bad one, nothing can be trusted
and the error is shown. A bad ``state`` or ``response_mode`` is not echoed or followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from ostiary.features.clients.models import Client
from ostiary.protocol.claims import ClaimsRequest, parse_claims_request
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.oidc import ACR_VALUES_SUPPORTED
from ostiary.protocol.pkce import is_valid_challenge, omission_refused
from ostiary.protocol.redirect_uris import matches_registered
from ostiary.protocol.scopes import ScopeError, granted_scopes, parse_scope

__all__ = [
    "AuthorizationError",
    "AuthorizationRequest",
    "UntrustedAuthorizationRequest",
    "redirect_with",
    "validate_authorization_request",
]

_PROMPTS = {"none", "login", "consent", "select_account"}
_MAX_PARAM = 2048
RESPONSE_MODES = ("query", "form_post")


class UntrustedAuthorizationRequest(Exception):
    """Shown on an error page; the browser is not redirected anywhere."""


class AuthorizationError(ProtocolError):
    def __init__(
        self,
        error: str,
        description: str,
        *,
        redirect_uri: str,
        state: str | None,
        response_mode: str = "query",
        hint: str = "",
    ) -> None:
        super().__init__(error, description, hint=hint)
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    state: str | None = None
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None
    acr_values: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)
    claims_request: ClaimsRequest | None = None
    redirect_uri_sent: bool = True
    response_mode: str = "query"

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    def requested_acr(self) -> tuple[tuple[str, ...], bool]:
        """The ``acr`` values asked for, and whether one of them must be met.

        OIDC Core 5.5.1.1: an essential ``acr`` claim's values must be met; else a voluntary
        claim's values, else ``acr_values`` (3.1.2.1), are wishes: the sign-in steps up to
        one when the user can, and the token says what was achieved.
        """
        if self.claims_request is not None:
            essential = self.claims_request.essential_acr()
            if essential:
                return essential, True
            voluntary = self.claims_request.acr_values()
            if voluntary:
                return voluntary, False
        return self.acr_values, False


def redirect_with(redirect_uri: str, params: dict[str, str]) -> str:
    """Add query parameters to a redirect URI, keeping the registered ones (RFC 6749 3.1.2)."""
    parts = urlsplit(redirect_uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _form_post_target(redirect_uri: str) -> bool:
    """A browser cannot POST to a native app's private-use scheme, and a CSP ``form-action``
    source cannot name an IPv6 literal host (CSP Level 3 section 2.3.1, host-source)."""
    parts = urlsplit(redirect_uri)
    return parts.scheme in ("http", "https") and "[" not in parts.netloc


def validate_authorization_request(
    params: dict[str, str],
    client: Client | None,
    *,
    resources_multi: tuple[str, ...] = (),
    repeated: tuple[str, ...] = (),
) -> AuthorizationRequest:
    """``params`` holds the first value of each parameter; ``repeated`` names those given
    more than once (``resource`` may repeat, RFC 8707 section 2, and is not among them)."""
    for name in ("client_id", "redirect_uri"):
        if name in repeated or len(params.get(name, "")) > _MAX_PARAM:
            raise UntrustedAuthorizationRequest(f"The {name} parameter is repeated or too long.")
    if client is None:
        raise UntrustedAuthorizationRequest("Unknown client.")
    if client.disabled:
        raise UntrustedAuthorizationRequest("This application has been disabled.")
    redirect_uri = params.get("redirect_uri", "")
    redirect_uri_sent = bool(redirect_uri)
    if not redirect_uri_sent and "openid" in params.get("scope", "").split(" "):
        raise UntrustedAuthorizationRequest(
            "redirect_uri is required in an OpenID Connect request."
        )
    if not redirect_uri_sent and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]  # OAuth 2.1 section 4.1.1 allows omission
    if not redirect_uri or not matches_registered(
        redirect_uri, client.redirect_uris, loopback_any_port=client.is_public
    ):
        raise UntrustedAuthorizationRequest(
            "The redirect URI is not registered for this application."
        )
    suspect = set(repeated) | {k for k, v in params.items() if len(v) > _MAX_PARAM}
    suspect |= {"resource" for r in resources_multi if len(r) > _MAX_PARAM}
    state = (params.get("state") or None) if "state" not in suspect else None
    requested_mode = mode = params.get("response_mode") or "query"
    if "response_mode" in suspect or mode not in RESPONSE_MODES:
        mode = "query"  # the default of response_type=code (Multiple Response Types 2.1)
    elif mode == "form_post" and not _form_post_target(redirect_uri):
        mode = "query"

    def fail(error: str, description: str) -> AuthorizationError:
        return AuthorizationError(
            error, description, redirect_uri=redirect_uri, state=state, response_mode=mode
        )

    if suspect:
        names = ", ".join(sorted(n[:32] for n in suspect)[:8])  # names are the sender's too
        raise fail("invalid_request", f"Parameters repeated or too long: {names}.")
    if requested_mode != mode:
        raise fail("invalid_request", "response_mode must be query or form_post (http(s) only).")
    if "request" in params:
        raise fail("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported.")
    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "Only response_type=code is supported.")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "This client may not use the authorization code grant.")
    method = params.get("code_challenge_method")
    challenge = params.get("code_challenge") or None
    if challenge is None and method is not None:
        raise fail("invalid_request", "code_challenge_method was sent without code_challenge.")
    if challenge is not None and method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256.")
    if challenge is not None and not is_valid_challenge(challenge):
        raise fail("invalid_request", "code_challenge is not a valid S256 challenge.")
    try:
        scopes = granted_scopes(parse_scope(params.get("scope")), client.scopes)
    except ScopeError as exc:
        raise fail("invalid_scope", str(exc)) from exc
    claims_request = None
    if params.get("claims") and "openid" in scopes:
        try:
            claims_request = parse_claims_request(params["claims"])
        except ValueError as exc:
            raise fail("invalid_request", str(exc)) from exc
        if claims_request.essential_acr_unmet(ACR_VALUES_SUPPORTED):
            # Core 5.5.1.1: a failed authentication; the error code of OpenID Connect Core
            # Error Code unmet_authentication_requirements 1.0. (Step-up to a class a
            # session lacks but could reach is the MFA feature's.)
            raise fail(
                "unmet_authentication_requirements",
                "No authentication this server offers meets the essential acr values.",
            )
    if challenge is None:
        # On the granted scopes: an openid the client may not have does not excuse PKCE.
        refused = omission_refused(
            client.effective_pkce, openid="openid" in scopes, nonce=bool(params.get("nonce"))
        )
        if refused:
            raise fail("invalid_request", refused)
    resources = resources_multi or ((params["resource"],) if params.get("resource") else ())
    for resource in resources:
        parts = urlsplit(resource)
        if not parts.scheme or parts.fragment or resource not in client.resources:
            raise fail("invalid_target", "The requested resource is not allowed for this client.")
    prompt = frozenset(parse_scope(params.get("prompt")) if params.get("prompt") else ())
    if not prompt <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise fail("invalid_request", "Invalid prompt value.")
    max_age: int | None = None
    if params.get("max_age"):
        if not params["max_age"].isdigit() or len(params["max_age"]) > 9:
            raise fail("invalid_request", "max_age must be a non-negative integer.")
        max_age = int(params["max_age"])
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        scopes=scopes,
        code_challenge=challenge,
        state=state,
        nonce=params.get("nonce") or None,
        prompt=prompt,
        max_age=max_age,
        login_hint=params.get("login_hint") or None,
        acr_values=parse_scope(params.get("acr_values")) if params.get("acr_values") else (),
        resources=resources,
        claims_request=claims_request,
        redirect_uri_sent=redirect_uri_sent,
        response_mode=mode,
    )
