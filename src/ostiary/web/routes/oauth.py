"""Token, introspection, revocation and userinfo endpoints (the hot path).

ARCHITECTURE.md: these take the raw ``Request``, parse the form themselves (repeated
parameters refused, RFC 6749 section 3.2) and answer with ``orjson``; no dependency chains,
no pydantic. They stay in the OpenAPI schema through ``openapi_extra``, but requests for them
are served by web/fastlane.py, outside FastAPI's routing. Per request they read the raw
headers once and build the response headers as one prebuilt list.

- RFC 6749 section 2.3.1: client_secret_basic (``Authorization: Basic``, form-urlencoded id
  and secret) and client_secret_post, either for a client that holds a secret; one method per
  request (section 2.3); a failed Basic authentication is 401 with
  ``WWW-Authenticate`` (section 5.2). Every token response has ``Cache-Control: no-store``
  (section 5.1).
- RFC 7662 (introspection, client-authenticated; section 4: only a resource server registered
  for the token's audience, or the client the token was issued to, learns about it), RFC 7009
  (revocation: 200 for unknown tokens too), OpenID Connect Core 1.0 section 5.3 (userinfo, GET
  and POST, RFC 6750 bearer; only tokens whose audience includes this issuer).
- RFC 8707 section 2: ``resource`` may repeat at the token endpoint.
- RFC 8693 (token exchange of an API key, features/oauth/grants/token_exchange.py): the key
  authenticates the request, so client authentication is optional for that grant alone; a
  client that does authenticate is named in the token. ``audience`` may repeat (section 2.1).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

import orjson
import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from ostiary.features.clients.assertions import ASSERTION_TYPE, ClientAssertionVerifier
from ostiary.features.clients.models import AuthMethod, Client
from ostiary.features.oauth.grants.token_exchange import TOKEN_EXCHANGE
from ostiary.protocol.forms import FormError, parse_form
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.web.deps import client_ip, first_headers, read_body, runtime_of
from ostiary.web.openapi_forms import form_body
from ostiary.web.runtime import Unit

router = APIRouter(tags=["oauth"])
log = structlog.get_logger("ostiary.oauth")

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
# RFC 6749 section 5.1: no-store (and Pragma for HTTP/1.0 caches) on every response here.
_CACHE_CONTROL = (b"cache-control", b"no-store")
_PRAGMA = (b"pragma", b"no-cache")
_CONTENT_TYPE = (b"content-type", _JSON.encode("ascii"))
_BASIC_CHALLENGE = 'Basic realm="ostiary", charset="UTF-8"'


class _JsonResponse(Response):
    """An ``orjson`` body with the headers of this module, in Starlette's order (no-store,
    Pragma, the challenge if any, Content-Length, Content-Type), built as one list instead of
    through Starlette's header merging."""

    media_type = _JSON

    def __init__(self, content: Any, status_code: int = 200, challenge: str | None = None) -> None:
        body = orjson.dumps(content)
        self.status_code = status_code
        self.background = None
        self.body = body
        length = (b"content-length", b"%d" % len(body))
        if challenge is None:
            self.raw_headers = [_CACHE_CONTROL, _PRAGMA, length, _CONTENT_TYPE]
        else:
            authenticate = (b"www-authenticate", challenge.encode("latin-1"))
            self.raw_headers = [_CACHE_CONTROL, _PRAGMA, authenticate, length, _CONTENT_TYPE]


def error_response(error: ProtocolError, *, basic_attempted: bool = False) -> Response:
    status = error.status_code
    challenge = None
    if error.error == "invalid_client":
        status = 401
        if basic_attempted:
            challenge = _BASIC_CHALLENGE
    if error.hint:
        log.info("oauth_error", error=error.error, hint=error.hint)
    return _JsonResponse(error.as_dict(), status, challenge)


_AUTHORIZATION_AND_TYPE = (b"authorization", b"content-type")


def _authorization_and_type(request: Request) -> tuple[str | None, str]:
    """The first ``Authorization`` and ``Content-Type`` values ("" when no type was sent)."""
    authorization, content_type = first_headers(request, _AUTHORIZATION_AND_TYPE)
    return authorization, content_type or ""


async def read_oauth_form(
    request: Request, content_type: str, repeatable: frozenset[str] = frozenset()
) -> dict[str, str]:
    if content_type.partition(";")[0].strip().lower() != _FORM:
        raise ProtocolError("invalid_request", "Use application/x-www-form-urlencoded.")
    try:
        return parse_form(await read_body(request.receive), repeatable=repeatable)
    except FormError as exc:
        raise ProtocolError("invalid_request", str(exc)) from exc


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("invalid_client", "Malformed Basic credentials.") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise ProtocolError("invalid_client", "Malformed Basic credentials.")
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Base64.
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not client_id.isprintable() or not secret.isprintable():
        raise ProtocolError("invalid_client", "Malformed Basic credentials.")
    return client_id, secret


async def authenticate_client(
    unit: Unit, authorization: str | None, form: dict[str, str]
) -> Client:
    """One authentication method per request (RFC 6749 section 2.3)."""
    basic = _basic_credentials(authorization)
    if ("client_assertion" in form) + ("client_secret" in form) + (basic is not None) > 1:
        raise ProtocolError("invalid_request", "Use one client authentication method.")
    if basic is not None:
        client_id = basic[0]
        if form.get("client_id", client_id) != client_id:
            raise ProtocolError("invalid_client", "client_id does not match the credentials.")
        return await unit.clients.authenticate(
            client_id, method="client_secret_basic", secret=basic[1]
        )
    client_id = form.get("client_id", "")
    if not client_id and "client_assertion" not in form:
        raise ProtocolError("invalid_client", "Client authentication is required.")
    method: AuthMethod
    if "client_assertion" in form:
        return await _authenticate_with_assertion(unit, form)
    method = "client_secret_post" if "client_secret" in form else "none"
    return await unit.clients.authenticate(
        client_id, method=method, secret=form.get("client_secret")
    )


def _names_a_client(authorization: str | None, form: dict[str, str]) -> bool:
    """Whether the request attempts client authentication (any method of section 2.3)."""
    return (
        (authorization is not None and authorization[:6].lower() == "basic ")
        or "client_id" in form
        or "client_secret" in form
        or "client_assertion" in form
    )


async def _authenticate_with_assertion(unit: Unit, form: dict[str, str]) -> Client:
    """RFC 7523 section 2.2 (``private_key_jwt``)."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise ProtocolError("invalid_client", "Unsupported client_assertion_type.")
    assertion = form["client_assertion"]
    claimed = ClientAssertionVerifier.claimed_client_id(assertion)
    client_id = form.get("client_id") or claimed
    if client_id != claimed:
        raise ProtocolError("invalid_client", "client_id does not match the assertion.")
    client = await unit.clients.authenticate(client_id, method="private_key_jwt")
    await unit.client_assertions.verify(client, assertion)
    return client


# Client authentication: HTTP Basic (RFC 6749 section 2.3.1), or none in the header (a public
# client, or the credentials in the form).
_CLIENT_BASIC: dict[str, Any] = {"security": [{"clientBasic": []}, {}]}
_TOKEN_FORM = {
    **form_body(
        "grant_type",
        optional=(
            "subject_token",
            "subject_token_type",
            "requested_token_type",
            "audience",
            "code",
            "redirect_uri",
            "code_verifier",
            "refresh_token",
            "scope",
            "resource",
            "client_id",
            "client_secret",
            "client_assertion_type",
            "client_assertion",
        ),
        schemas={
            "grant_type": {
                "enum": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                    TOKEN_EXCHANGE,
                ]
            },
            "subject_token": {"description": "Token exchange (RFC 8693): the API key (ost_sk_...)"},
            "subject_token_type": {"enum": ["urn:ostiary:params:oauth:token-type:api-key"]},
            "requested_token_type": {"enum": ["urn:ietf:params:oauth:token-type:access_token"]},
            "audience": {
                "type": "array",
                "items": {"type": "string"},
                "description": "RFC 8693 section 2.1 audience(s); may repeat",
            },
            "resource": {
                "type": "array",
                "items": {"type": "string", "format": "uri"},
                "description": "RFC 8707 resource indicator(s); may repeat",
            },
        },
    ),
    **_CLIENT_BASIC,
}
# RFC 8707 section 2: "resource" may repeat (one access token for several resource servers);
# every other token request parameter must be unique (RFC 6749 section 3.2).
_TOKEN_REPEATABLE = frozenset({"resource", "audience"})
_TOKEN_FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Token response (RFC 6749 section 5.1)", "content": {_JSON: {}}},
    400: {"description": "Error response (RFC 6749 section 5.2)", "content": {_JSON: {}}},
    401: {"description": "Client authentication failed", "content": {_JSON: {}}},
    415: {"description": "Not a form", "content": {_JSON: {}}},
}


@router.post(
    "/token",
    summary="Token endpoint (RFC 6749 section 3.2)",
    response_class=Response,
    openapi_extra=_TOKEN_FORM,
    responses=_TOKEN_FORM_RESPONSES,
)
async def token(request: Request) -> Response:
    authorization, content_type = _authorization_and_type(request)
    try:
        form = await read_oauth_form(request, content_type, _TOKEN_REPEATABLE)
    except ProtocolError as exc:
        return error_response(exc)
    error: ProtocolError | None = None
    # Commit even when the grant fails: replay and reuse detection revoke tokens on purpose.
    rt = runtime_of(request)
    async with rt.unit() as unit:
        try:
            client: Client | None = None
            if form.get("grant_type") != TOKEN_EXCHANGE:
                client = await authenticate_client(unit, authorization, form)
            else:
                await rt.catch_up(unit)  # SQLite: an API key revoked by the CLI, at once
                if _names_a_client(authorization, form):
                    client = await authenticate_client(unit, authorization, form)
            body = await unit.oauth.token(client, form, client_ip=client_ip(request))
        except ProtocolError as exc:
            error = exc
    if error is not None:
        return error_response(error, basic_attempted=authorization is not None)
    return _JsonResponse(body)


_TOKEN_ABOUT_FORM = {
    **form_body("token", optional=("token_type_hint", "client_id", "client_secret")),
    **_CLIENT_BASIC,
}


async def _client_and_token(
    unit: Unit, authorization: str | None, form: dict[str, str]
) -> tuple[Client, str]:
    """The authenticated client and the ``token`` parameter (RFC 7662 2.1, RFC 7009 2.1)."""
    client = await authenticate_client(unit, authorization, form)
    token_value = form.get("token", "")
    if not token_value:
        raise ProtocolError("invalid_request", "token is required.")
    return client, token_value


@router.post(
    "/introspect",
    summary="Token introspection (RFC 7662)",
    response_class=Response,
    openapi_extra=_TOKEN_ABOUT_FORM,
    responses=_TOKEN_FORM_RESPONSES,
)
async def introspect(request: Request) -> Response:
    authorization, content_type = _authorization_and_type(request)
    try:
        form = await read_oauth_form(request, content_type)
        rt = runtime_of(request)
        async with rt.unit() as unit:
            client, token_value = await _client_and_token(unit, authorization, form)
            if client.is_public:
                raise ProtocolError("invalid_client", "Public clients may not introspect.")
            await rt.catch_up(unit)  # "at once" includes revocations made by the CLI
            body = await unit.oauth.introspect(client, token_value, form.get("token_type_hint"))
    except ProtocolError as exc:
        return error_response(exc, basic_attempted=authorization is not None)
    return _JsonResponse(body)


@router.post(
    "/revoke",
    summary="Token revocation (RFC 7009)",
    response_class=Response,
    openapi_extra=_TOKEN_ABOUT_FORM,
    responses=_TOKEN_FORM_RESPONSES,
)
async def revoke(request: Request) -> Response:
    authorization, content_type = _authorization_and_type(request)
    try:
        form = await read_oauth_form(request, content_type)
        async with runtime_of(request).unit() as unit:
            client, token_value = await _client_and_token(unit, authorization, form)
            await unit.oauth.revoke(client, token_value, form.get("token_type_hint"))
    except ProtocolError as exc:
        return error_response(exc, basic_attempted=authorization is not None)
    # RFC 7009 section 2.2: 200; an empty JSON object (oidc-client-ts rejects text/plain).
    return _JsonResponse({})


def _bearer(authorization: str | None, form: dict[str, str] | None) -> str:
    header = authorization or ""
    from_form = (form or {}).get("access_token")
    if header[:7].lower() == "bearer ":
        if from_form:
            raise ProtocolError("invalid_request", "Send the token one way only.")
        return header[7:].strip()
    if from_form:
        return from_form
    raise ProtocolError("invalid_token", "")


def _bearer_error(error: ProtocolError) -> Response:
    # RFC 6750 section 3: WWW-Authenticate with the error code (none when no token was sent).
    challenge = 'Bearer realm="ostiary"'
    if error.description:
        challenge += f', error="{error.error}", error_description="{error.description}"'
    status = 401 if error.error in ("invalid_token",) else error.status_code
    body = error.as_dict() if error.description else {"error": "invalid_token"}
    return _JsonResponse(body, status, challenge)


_USERINFO_DOC: dict[str, Any] = {
    "summary": "UserInfo endpoint (OpenID Connect Core 1.0 section 5.3)",
    "response_class": Response,
    "responses": {
        200: {"description": "Claims of the user", "content": {_JSON: {}}},
        400: {"description": "Malformed request", "content": {_JSON: {}}},
        401: {"description": "Missing or invalid bearer token", "content": {_JSON: {}}},
        403: {"description": "Token lacks the openid scope", "content": {_JSON: {}}},
    },
}


@router.get("/userinfo", **_USERINFO_DOC, openapi_extra={"security": [{"bearer": []}]})
async def userinfo_get(request: Request) -> Response:
    return await userinfo(request)


@router.post(
    "/userinfo",
    **_USERINFO_DOC,
    openapi_extra={
        "security": [{"bearer": []}, {}],
        **form_body(optional=("access_token",), body_required=False),
    },
)
async def userinfo_post(request: Request) -> Response:
    return await userinfo(request)


async def userinfo(request: Request) -> Response:
    authorization, content_type = _authorization_and_type(request)
    try:
        form = None
        if request.scope["method"] == "POST" and content_type.startswith(_FORM):
            form = await read_oauth_form(request, content_type)
        token_value = _bearer(authorization, form)
        rt = runtime_of(request)
        async with rt.unit() as unit:
            await rt.catch_up(unit)
            claims = await unit.oauth.userinfo(token_value)
    except ProtocolError as exc:
        if exc.error == "invalid_request":
            return _JsonResponse(exc.as_dict(), 400)
        return _bearer_error(exc)
    return _JsonResponse(claims)
