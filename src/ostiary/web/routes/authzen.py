"""The AuthZEN decision API: OpenID AuthZEN Authorization API 1.0 (issue 13, section 3).

- ``POST /access/v1/evaluation`` (section 6) and ``POST /access/v1/evaluations`` (section 7,
  with ``options.evaluations_semantic``); ``GET /.well-known/authzen-configuration`` (section
  9: ``policy_decision_point``, ``access_evaluation_endpoint``,
  ``access_evaluations_endpoint``).
- The caller is the policy enforcement point. It authenticates with an RFC 6750 bearer
  credential: an Ostiary access token (RFC 9068), or an API key of a service account (the
  apikeys feature's ``KeyVerifier.authenticate_caller``: the same key request after request,
  its answer kept per node while what it rests on holds, features/apikeys/callers.py). Decisions are
  made inside the caller's organization:
  * a user's token: the organization named by the ``Ostiary-Organization`` header (id or
    slug), or by the token's ``org_id`` claim; the user must hold ``access:evaluate`` there;
  * a client_credentials token: the organization of its ``org_id`` claim (org-bound clients);
    a token without one is refused;
  * an API key: its organization, when the key holds ``access:evaluate``.
- Answers ``{"decision": bool}`` with ``context.reason_admin`` / ``reason_user`` on deny; a
  malformed request is a 400 ``{"error": "invalid_request", "error_description"}`` naming the
  JSON pointer of the bad member; a missing or bad credential a 401 with ``WWW-Authenticate``
  (RFC 6750 section 3); a caller without the permission a 403. ``X-Request-ID`` is echoed
  (section 10.1.3) by the request-context middleware.
- The endpoints take the raw ``Request`` and are served by web/fastlane.py, as /token is, and
  appear in the OpenAPI document through ``openapi_extra``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ostiary.features.oauth.access_tokens import claims_active
from ostiary.features.orgs.models import TenancyError
from ostiary.features.policy.callers import VerifiedCaller
from ostiary.features.policy.models import Decision
from ostiary.features.policy.service import DecisionEnv
from ostiary.protocol.authzen import AuthzenError, parse_evaluation, parse_evaluations
from ostiary.protocol.permissions import allows
from ostiary.web.deps import client_ip, first_headers, read_body, runtime_of
from ostiary.web.runtime import Runtime, Unit

__all__ = ["authenticate_caller", "router"]

router = APIRouter(tags=["authzen"])

_JSON = "application/json"
PERMISSION = "access:evaluate"
ORG_HEADER = "ostiary-organization"
_HEADERS = (b"authorization", b"content-type", ORG_HEADER.encode())


_CONTENT_TYPE = (b"content-type", _JSON.encode())
_NO_STORE = (b"cache-control", b"no-store")


class _Json(Response):
    """An ``orjson`` body with Starlette's headers and ours (Content-Length, Content-Type,
    Cache-Control, the challenge if any), built as one list instead of through Starlette's
    header merging, as web/routes/oauth.py does."""

    media_type = _JSON

    def __init__(self, content: Any, status_code: int = 200, challenge: str | None = None) -> None:
        body = orjson.dumps(content)
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), _CONTENT_TYPE, _NO_STORE]
        if challenge is not None:
            self.raw_headers.append((b"www-authenticate", challenge.encode("latin-1")))


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> Response:
        challenge = None
        if self.status == 401:
            challenge = f'Bearer error="{self.error}"' if self.error != "unauthorized" else "Bearer"
        body = {"error": self.error, "error_description": self.description}
        return _Json(body, self.status, challenge)


def _headers(request: Request) -> tuple[str | None, str, str | None]:
    """The first ``Authorization``, ``Content-Type`` ("" when none was sent) and
    ``Ostiary-Organization`` values."""
    authorization, content_type, organization = first_headers(request, _HEADERS)
    return authorization, content_type or "", organization


def _bearer(value: str | None) -> str:
    if value is None:
        raise _Refused(401, "unauthorized", "a bearer access token or API key is required")
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise _Refused(401, "invalid_request", "use Authorization: Bearer <credential>")
    return credential


async def authenticate_caller(
    rt: Runtime, unit: Unit, credential: str, named: str | None, ip: str | None
) -> tuple[str, DecisionEnv, str | None]:
    """(organization id, the environment of its decisions, the user id the token is of) for
    the bearer ``credential`` and the organization the request names (``named``: the
    Ostiary-Organization header) if any. An access token's answer is kept per node
    (features/policy/callers.py) and used again while what it rests on holds."""
    now = rt.clock.now()
    # Policies, catalog and roles changed by another process (the CLI on SQLite) first.
    await rt.catch_up(unit)
    if credential.count(".") != 2:  # not a JWT: an API key
        key = await unit.api_key_verifier.authenticate_caller(credential, ip)
        if key is None:
            raise _Refused(401, "invalid_token", "the credential is invalid")
        if not allows(key.permissions, PERMISSION):
            raise _Refused(403, "insufficient_permission", f"the key lacks {PERMISSION}")
        return key.organization_id, DecisionEnv(now, ip), None
    ref = named or ""
    known = rt.decision_callers.get(credential, ref)
    if known is not None:
        if _holds(rt, known, now):
            return known.organization_id, DecisionEnv(now, ip, known.acr, known.amr), known.user_id
        rt.decision_callers.discard(credential, ref)
    # Read before what they guard (features/policy/callers.py).
    key_list = rt.signers.key_list()
    org_stamp = rt.org_cache.stamp()
    claims = await unit.access_tokens.validate(credential)
    if claims is None:
        raise _Refused(401, "invalid_token", "the access token is invalid or expired")
    # RFC 9068 section 4 / RFC 8707: a token minted for another resource server is not for us.
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience or []
    if rt.oauth_policy.issuer not in audiences:
        raise _Refused(401, "invalid_token", "the access token is not intended for this server")
    subject = str(claims.get("sub", ""))
    claimed = claims.get("org_id")
    org_ref = named or (claimed if isinstance(claimed, str) else None)
    if org_ref is None:
        raise _Refused(
            400, "invalid_request", "name the organization in the Ostiary-Organization header"
        )
    try:
        org = await unit.orgs.resolve(org_ref[:100])
    except TenancyError:
        raise _Refused(403, "insufficient_permission", "not allowed in that organization") from None
    if isinstance(claimed, str) and claimed != org.id:
        raise _Refused(403, "insufficient_permission", "the token is bound to another organization")
    amr = claims.get("amr")
    acr = claims["acr"] if isinstance(claims.get("acr"), str) else None
    amrs = tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else ()
    user_id: str | None = subject
    permission_stamp: object = None
    if subject and subject == claims.get("client_id"):  # client_credentials
        if not isinstance(claimed, str):
            raise _Refused(
                403, "insufficient_permission", "the client is not bound to an organization"
            )
        user_id, acr, amrs = None, None, ()
    else:
        permission_stamp = rt.permission_cache.stamp(org.id, "user", subject)
        held = await unit.rbac.effective_permissions(org.id, "user", subject)
        if not allows(held, PERMISSION):
            # Same answer for a stranger and a member without the permission.
            raise _Refused(403, "insufficient_permission", "not allowed in that organization")
    rt.decision_callers.put(
        credential,
        ref,
        VerifiedCaller(
            org.id,
            user_id,
            acr,
            amrs,
            claims,
            key_list,
            org_stamp,
            permission_stamp,
        ),
    )
    return org.id, DecisionEnv(now, ip, acr, amrs), user_id


def _holds(rt: Runtime, known: VerifiedCaller, now: datetime) -> bool:
    """What ``known`` rests on is unchanged (features/policy/callers.py) and its token is
    still active: not expired, not revoked."""
    return (
        rt.signers.current(known.keys, now)
        and known.org_stamp == rt.org_cache.stamp()
        and (
            known.user_id is None
            or known.permission_stamp
            == rt.permission_cache.stamp(known.organization_id, "user", known.user_id)
        )
        and claims_active(known.claims, now.timestamp(), rt.revoked)
    )


def _env_for(
    env: DecisionEnv,
    token_user: str | None,
    subject_type: str,
    subject_id: str,
    bare: DecisionEnv | None = None,
) -> DecisionEnv:
    """acr/amr of the caller's token speak for the subject only when it is the same user;
    for any other subject, ``bare`` (the same environment without them) if given. The
    decisions of a batch share one ``bare``, and so the decision log's view of it
    (PolicyService.evaluate)."""
    if token_user is not None and subject_type == "user" and subject_id == token_user:
        return env
    return bare or DecisionEnv(env.now, env.ip)


async def _body(request: Request, content_type: str) -> Any:
    if content_type.split(";")[0].strip().lower() != _JSON:
        raise _Refused(415, "invalid_request", "send the request as application/json")
    try:
        return orjson.loads(await read_body(request.receive))
    except orjson.JSONDecodeError:
        raise _Refused(400, "invalid_request", "the body is not valid JSON") from None


async def _decide_one(request: Request) -> Response:
    rt = runtime_of(request)
    authorization, content_type, named = _headers(request)
    try:
        # A request without a bearer credential is refused before its body is read (up to
        # 1 MiB of JSON); the credential itself is checked once the body is in, so that no
        # unit (a database connection on PostgreSQL) waits for a slow client's upload.
        credential = _bearer(authorization)
        evaluation = parse_evaluation(await _body(request, content_type))
        async with rt.unit() as unit:
            org_id, env, token_user = await authenticate_caller(
                rt, unit, credential, named, client_ip(request)
            )
            subject = evaluation.subject
            decision = await unit.policies.evaluate(
                org_id, evaluation, _env_for(env, token_user, subject.type, subject.id)
            )
    except AuthzenError as exc:
        return _Refused(400, "invalid_request", str(exc)).response()
    except _Refused as exc:
        return exc.response()
    return _Json(decision.response())


async def _decide_batch(request: Request) -> Response:
    rt = runtime_of(request)
    authorization, content_type, named = _headers(request)
    try:
        credential = _bearer(authorization)  # first, as in _decide_one
        batch = parse_evaluations(await _body(request, content_type))
        answers: list[Decision] = []
        async with rt.unit() as unit:
            org_id, env, token_user = await authenticate_caller(
                rt, unit, credential, named, client_ip(request)
            )
            bare = env if not (env.acr or env.amr) else DecisionEnv(env.now, env.ip)
            for evaluation in batch.evaluations:
                subject = evaluation.subject
                decision = await unit.policies.evaluate(
                    org_id, evaluation, _env_for(env, token_user, subject.type, subject.id, bare)
                )
                answers.append(decision)
                # Section 7.1.2.1: stop at the first deny / permit; the answer lists the
                # evaluations made, up to and including that one.
                if batch.semantic == "deny_on_first_deny" and not decision.allowed:
                    break
                if batch.semantic == "permit_on_first_permit" and decision.allowed:
                    break
    except AuthzenError as exc:
        return _Refused(400, "invalid_request", str(exc)).response()
    except _Refused as exc:
        return exc.response()
    if batch.single:
        return _Json(answers[0].response())
    return _Json({"evaluations": [a.response() for a in answers]})


_ENTITY = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "id": {"type": "string"},
        "properties": {"type": "object"},
    },
    "required": ["type", "id"],
}
_ACTION = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "properties": {"type": "object"}},
    "required": ["name"],
}
_EVALUATION = {
    "type": "object",
    "properties": {
        "subject": _ENTITY,
        "action": _ACTION,
        "resource": _ENTITY,
        "context": {"type": "object"},
    },
}
_DECISION = {
    "type": "object",
    "properties": {"decision": {"type": "boolean"}, "context": {"type": "object"}},
    "required": ["decision"],
}


def _doc(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {_JSON: {"schema": body}}},
        "security": [{"bearer": []}],
        "parameters": [
            {
                "name": "Ostiary-Organization",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The organization (id or slug) a user token's caller acts in.",
            }
        ],
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request", "content": {_JSON: {}}},
    401: {"description": "Missing or invalid credential", "content": {_JSON: {}}},
    403: {"description": "The caller may not evaluate here", "content": {_JSON: {}}},
    415: {"description": "Not JSON", "content": {_JSON: {}}},
}


@router.post(
    "/access/v1/evaluation",
    summary="Access Evaluation (OpenID AuthZEN Authorization API 1.0 section 6)",
    response_class=Response,
    openapi_extra=_doc({**_EVALUATION, "required": ["subject", "action", "resource"]}),
    responses={
        200: {"description": "The decision", "content": {_JSON: {"schema": _DECISION}}},
        **_ERRORS,
    },
)
async def access_evaluation(request: Request) -> Response:
    return await _decide_one(request)


@router.post(
    "/access/v1/evaluations",
    summary="Access Evaluations (OpenID AuthZEN Authorization API 1.0 section 7)",
    response_class=Response,
    openapi_extra=_doc(
        {
            **_EVALUATION,
            "properties": {
                **_EVALUATION["properties"],  # type: ignore[dict-item]
                "evaluations": {"type": "array", "items": _EVALUATION},
                "options": {
                    "type": "object",
                    "properties": {
                        "evaluations_semantic": {
                            "type": "string",
                            "enum": [
                                "execute_all",
                                "deny_on_first_deny",
                                "permit_on_first_permit",
                            ],
                        }
                    },
                },
            },
        }
    ),
    responses={200: {"description": "The decisions", "content": {_JSON: {}}}, **_ERRORS},
)
async def access_evaluations(request: Request) -> Response:
    return await _decide_batch(request)


@router.get(
    "/.well-known/authzen-configuration",
    summary="PDP metadata (OpenID AuthZEN Authorization API 1.0 section 9)",
    response_class=Response,
    responses={200: {"description": "PDP metadata", "content": {_JSON: {}}}},
)
async def authzen_configuration(request: Request) -> Response:
    rt = runtime_of(request)
    issuer = rt.oauth_policy.issuer.rstrip("/")
    return _Json(
        {
            "policy_decision_point": issuer,
            "access_evaluation_endpoint": f"{issuer}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{issuer}/access/v1/evaluations",
        }
    )
