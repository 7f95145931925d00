"""``POST /api/v1/keys/verify``: is this API key valid, and what may it do (issue 12, section 3).

A hot path (a gateway asks it for each model call it has not cached), so it is served like the
token endpoint (web/fastlane.py): a plain ``async def endpoint(request)`` that reads the raw
headers and body, answers with ``orjson`` and prebuilt headers, and stays in the OpenAPI
document through ``openapi_extra``.

- The caller authenticates with ``Authorization: Bearer`` (RFC 6750 section 2.1): either an
  API key of a service account holding ``keys:verify`` (a gateway; it verifies keys of its own
  organization only, a key of another organization is ``{"valid": false}``), or the key being
  verified itself. No or an invalid bearer key: 401 with ``WWW-Authenticate`` (RFC 6750
  section 3); a valid key without ``keys:verify`` verifying another key: 403
  ``insufficient_scope`` (section 3.1). The caller's own key must allow the caller's address.
  A gateway's own key is verified once per node and its answer kept while everything it rests
  on holds (features/apikeys/callers.py); the address is checked at every request.
- Body: JSON ``{"key": "...", "ip": "...", "model": "..."}`` (``ip`` and ``model``
  optional). Answer: ``{"valid": true, "key_id", "owner": {"type", "id"}, "organization_id",
  "project_id", "permissions", "models", "allowed_ips", "expires_at"}``, or
  ``{"valid": false}`` for every kind of invalid key (features/apikeys/service.py: no
  enumeration), or ``{"valid": false, "reason": "ip_not_allowed" | "model_not_allowed"}``
  when the named address or model is outside the key's allowlists (the caller holds the key
  or ``keys:verify``, so the reason tells it nothing it could not learn).
- Every response has ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from ostiary.features.apikeys.models import ApiKeyPrincipal, Verification
from ostiary.protocol.permissions import allows
from ostiary.web.deps import client_ip, runtime_of

__all__ = ["VERIFY_PATH", "router"]

router = APIRouter(tags=["api-keys"])

VERIFY_PATH = "/api/v1/keys/verify"
_JSON = "application/json"
_MAX_BODY = 4096
_HEADERS = [(b"cache-control", b"no-store"), (b"content-type", _JSON.encode())]
_CHALLENGE = 'Bearer realm="ostiary"'
_INVALID: dict[str, Any] = {"valid": False}


class _Json(Response):
    """An ``orjson`` body (``content``, or ``content`` itself when it is encoded already) with
    prebuilt headers (as web/routes/oauth.py does)."""

    media_type = _JSON

    def __init__(self, content: Any, status_code: int = 200, challenge: str | None = None):
        body = content if type(content) is bytes else orjson.dumps(content)
        self.status_code = status_code
        self.background = None
        self.body = body
        headers = [*_HEADERS, (b"content-length", b"%d" % len(body))]
        if challenge is not None:
            headers.append((b"www-authenticate", challenge.encode("latin-1")))
        self.raw_headers = headers


def _error(status: int, error: str, description: str) -> Response:
    return _Json({"error": error, "error_description": description}, status)


def _unauthorized(error: str | None = None, description: str = "") -> Response:
    if error is None:  # no credentials: the bare challenge (RFC 6750 section 3.1)
        return _Json(
            {"error": "invalid_token", "error_description": "A bearer API key is required."},
            401,
            _CHALLENGE,
        )
    challenge = f'{_CHALLENGE}, error="{error}", error_description="{description}"'
    status = 403 if error == "insufficient_scope" else 401
    return _Json({"error": error, "error_description": description}, status, challenge)


def _headers(request: Request) -> tuple[str | None, str]:
    authorization: bytes | None = None
    content_type = b""
    for name, value in request.scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and not content_type:
            content_type = value
    return (
        None if authorization is None else authorization.decode("latin-1"),
        content_type.decode("latin-1"),
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The body, or None past :data:`_MAX_BODY` (a key request is tiny)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _field(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def _answer(principal: ApiKeyPrincipal) -> dict[str, Any]:
    return {
        "valid": True,
        "key_id": principal.key_id,
        "owner": {"type": principal.owner_type, "id": principal.owner_id},
        "organization_id": principal.organization_id,
        "project_id": principal.project_id,
        "permissions": sorted(principal.permissions),
        "models": list(principal.models),
        "allowed_ips": list(principal.allowed_ips),
        "expires_at": principal.expires_at.isoformat() if principal.expires_at else None,
    }


# A valid key's answer, encoded once per outcome: the verifier hands out the same outcome
# while the key's row and its owner's permissions hold (features/apikeys/verification.py), so it
# is compared by identity (the entry keeps it alive: an identity is never reused). Bounded: the
# oldest key goes first.
_MAX_BODIES = 10_000
_bodies: dict[str, tuple[Verification, bytes]] = {}


def _valid_body(outcome: Verification, principal: ApiKeyPrincipal) -> bytes:
    known = _bodies.get(principal.key_id)
    if known is not None and known[0] is outcome:
        return known[1]
    body = orjson.dumps(_answer(principal))
    if known is None and len(_bodies) >= _MAX_BODIES:
        del _bodies[next(iter(_bodies))]
    _bodies[principal.key_id] = (outcome, body)
    return body


def _outcome(outcome: Verification, organization_id: str | None) -> dict[str, Any] | bytes:
    principal = outcome.principal
    if principal is None:
        return _INVALID
    if organization_id is not None and principal.organization_id != organization_id:
        return _INVALID  # another organization's key: the gateway learns nothing of it
    if outcome.reason is not None:
        return {"valid": False, "reason": outcome.reason}
    return _valid_body(outcome, principal)


_VERIFY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string", "description": "The API key (ost_sk_...)"},
                        "ip": {"type": "string", "description": "Client address to check"},
                        "model": {"type": "string", "description": "Model to check"},
                    },
                    "required": ["key"],
                }
            }
        },
    },
    "security": [{"apiKey": []}],
}
_VERIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": '{"valid": true, ...} or {"valid": false}', "content": {_JSON: {}}},
    400: {"description": "Malformed request", "content": {_JSON: {}}},
    401: {"description": "No or an invalid bearer API key", "content": {_JSON: {}}},
    403: {"description": "The bearer key lacks keys:verify", "content": {_JSON: {}}},
    413: {"description": "Body too large", "content": {_JSON: {}}},
    415: {"description": "Not JSON", "content": {_JSON: {}}},
}


@router.post(
    VERIFY_PATH,
    summary="Verify an API key",
    response_class=Response,
    openapi_extra=_VERIFY_DOC,
    responses=_VERIFY_RESPONSES,
)
async def verify_api_key(request: Request) -> Response:
    authorization, content_type = _headers(request)
    if not authorization or authorization[:7].lower() != "bearer ":
        return _unauthorized()
    bearer = authorization[7:].strip()
    if content_type.partition(";")[0].strip().lower() != _JSON:
        return _error(415, "invalid_request", "Send a JSON object (application/json).")
    raw = await _read_body(request.receive)
    if raw is None:
        return _error(413, "invalid_request", "The body is too large.")
    try:
        body = orjson.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        key = _field(body, "key", 512, required=True)
        ip = _field(body, "ip", 64)
        model = _field(body, "model", 200)
    except (orjson.JSONDecodeError, ValueError) as exc:
        return _error(400, "invalid_request", str(exc)[:200])
    assert key is not None
    rt = runtime_of(request)
    async with rt.unit() as unit:
        await rt.catch_up(unit)  # SQLite: take in role changes another process committed
        service = unit.api_key_verifier
        if bearer == key:
            outcome = await service.verify(key, ip=ip, model=model)
            if outcome.principal is None:
                return _unauthorized("invalid_token", "The API key is not valid.")
            return _Json(_outcome(outcome, None))
        # The gateway's own key: the same every request, kept per node while its answer holds.
        caller = await service.authenticate_caller(bearer, client_ip(request))
        if caller is None:
            return _unauthorized("invalid_token", "The API key is not valid.")
        if caller.owner_type != "service_account" or not allows(caller.permissions, "keys:verify"):
            return _unauthorized(
                "insufficient_scope", "Only a service account key with keys:verify may do this."
            )
        outcome = await service.verify(key, ip=ip, model=model)
        return _Json(_outcome(outcome, caller.organization_id))
