"""Who calls the management API (/api/v1) and what they may do there (issue 12, section 4).

Authentication (RFC 6750 section 2.1, ``Authorization: Bearer``):

- an access token issued here (RFC 9068 JWT), verified as the UserInfo endpoint verifies them:
  signature, ``typ``, issuer, lifetime, audience (this issuer) and the revocation set (ended
  sessions, disabled users, revoked families), and carrying the scope ``ostiary.manage``
  (protocol/scopes.py), so that a token an application obtained for sign-in cannot manage
  organizations. The caller is the token's user (``sub``). A client_credentials token has no
  user (RFC 9068 section 2.2: its ``sub`` is the client) and is refused with 403: machines use a
  service account's API key.
- an API key (``ost_sk_...``), checked by features/apikeys (``KeyVerifier.authenticate_api_key``:
  the key's row and its owner's standing are read at every call, so a revoked key, a removed
  member's or a disabled service account's stops at once on every node; the key's IP allowlist
  is checked against the caller's address).

A missing or invalid credential is 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 section 3;
``error`` only when a credential was sent, section 3.1); a token without the scope is 403
``insufficient_scope`` naming it.

Authorization: a user acts in the organization of the path with their effective permissions
there (features/rbac); an API key only inside its own organization, with the permissions it was
narrowed to, capped by its owner's current ones. Anyone else (non-members, members of another
organization, a key of another organization) gets 404 for everything under /orgs/{org}, so an
organization's existence does not leak; a member lacking a permission gets 403 naming it. No
escalation (:meth:`OrgCall.refuse_escalation`): a caller cannot grant, take away, or shape a
role with permissions they do not hold themselves, and only holders of ``*`` (owners) grant
``*``.

Every change runs through ``Unit.attempt``: a refused change leaves nothing behind and is
audited as a failure with the actor (a user id, or ``key:<id>``) and the organization.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from ostiary.features.apikeys.models import ApiKeyPrincipal
from ostiary.features.orgs.models import Forbidden, NotFound, Organization, TenancyError
from ostiary.features.rbac.models import Escalation, Principal
from ostiary.protocol.api_cursors import InvalidCursor, open_cursor, seal_cursor
from ostiary.protocol.permissions import ALL, allows
from ostiary.protocol.scopes import MANAGE_SCOPE, ScopeError, parse_scope
from ostiary.web.deps import client_ip, runtime_of
from ostiary.web.errors import ApiError
from ostiary.web.runtime import Unit

__all__ = [
    "API_KEY_PREFIX",
    "Caller",
    "OrgCall",
    "caller_from_request",
    "in_org",
    "open_list_cursor",
    "require_bearer",
    "run_as_caller",
    "seal_list_cursor",
    "status_of",
]

T = TypeVar("T")
API_KEY_PREFIX = "ost_sk_"
_MAX_CREDENTIAL = 8_192
_CHALLENGE = 'Bearer realm="ostiary"'

# The HTTP status of each stable tenancy code (features/orgs/models.py, features/rbac/models.py).
_STATUS = {
    "not_found": 404,
    "not_a_member": 404,
    "conflict": 409,
    "role_cycle": 409,
    "last_owner": 409,
    "builtin_role": 409,
    "forbidden": 403,
    "permission_escalation": 403,
    "invalid": 422,
    "invalid_permission": 422,
    "invalid_policy": 422,
    "invalid_cursor": 400,
}


def status_of(code: str) -> int:
    return _STATUS.get(code, 400)


class CursorRefused(TenancyError):
    code = "invalid_cursor"


class BuiltinRole(TenancyError):
    code = "builtin_role"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: a user (access token) or an API key."""

    principal: Principal  # ("user", id) or ("service_account", id): whose permissions count
    key: ApiKeyPrincipal | None = None

    @property
    def actor(self) -> str:
        """Who the audit trail names: the user, or the key (``key:<id>``)."""
        return f"key:{self.key.key_id}" if self.key is not None else self.principal[1]

    @property
    def user_id(self) -> str | None:
        return self.principal[1] if self.principal[0] == "user" else None


def _unauthorized(message: str, error: str | None = "invalid_token") -> ApiError:
    challenge = _CHALLENGE
    if error is not None:
        challenge += f', error="{error}", error_description="{message}"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _bearer_of(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("an access token or API key is required", None)
    scheme, _, value = header.partition(" ")
    credential = value.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > _MAX_CREDENTIAL:
        raise _unauthorized("send the credential as Authorization: Bearer <token>")
    return credential


async def require_bearer(request: Request) -> None:
    """A router dependency: a request without a bearer credential is answered 401 before
    its body is validated (a caller learns nothing of the API's shapes without one)."""
    _bearer_of(request)


async def caller_from_request(unit: Unit, request: Request) -> Caller:
    """Authenticate the bearer of ``request`` (see the module docstring) or raise
    :class:`ApiError` 401/403."""
    credential = _bearer_of(request)
    if credential.startswith(API_KEY_PREFIX):
        principal = await unit.api_key_verifier.authenticate_api_key(credential, client_ip(request))
        if principal is None:
            raise _unauthorized("the API key is invalid, expired or revoked")
        return Caller((principal.owner_type, principal.owner_id), principal)
    claims = await unit.access_tokens.validate(credential)
    if claims is None:
        raise _unauthorized("the access token is invalid or expired")
    if runtime_of(request).oauth_policy.issuer not in _audiences(claims):
        raise _unauthorized("the access token is not intended for this server")
    subject = claims.get("sub")
    if (
        "auth_time" not in claims
        or not isinstance(subject, str)
        or subject == claims.get("client_id")
    ):
        raise ApiError(
            403,
            "client_token",
            "a client_credentials token has no user; machines call this API with a "
            "service account's API key (ost_sk_...)",
        )
    try:
        scopes = parse_scope(str(claims.get("scope", "")))
    except ScopeError:
        scopes = ()
    if MANAGE_SCOPE not in scopes:
        challenge = f'{_CHALLENGE}, error="insufficient_scope", scope="{MANAGE_SCOPE}"'
        raise ApiError(
            403,
            "insufficient_scope",
            f"the access token lacks the scope {MANAGE_SCOPE!r}",
            headers={"WWW-Authenticate": challenge},
        )
    user = await unit.accounts.get(subject)
    if user is None or user.disabled:
        raise _unauthorized("the user is no longer active")
    return Caller(("user", user.id))


@dataclass(slots=True)
class OrgCall:
    """One authorized call inside an organization: the unit, the caller, the organization."""

    unit: Unit
    caller: Caller
    org: Organization
    cursor_key: bytes
    _held: dict[str | None, frozenset[str]] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return self.caller.actor

    async def held(self, project_id: str | None = None) -> frozenset[str]:
        """The caller's permissions here (or in one project): a user's effective ones; a
        key's narrowed set capped by its owner's effective ones."""
        cached = self._held.get(project_id)
        if cached is not None:
            return cached
        kind, principal_id = self.caller.principal
        effective = await self.unit.rbac.effective_permissions(
            self.org.id, kind, principal_id, project_id
        )
        key = self.caller.key
        if key is not None and ALL not in key.permissions:
            effective = frozenset(p for p in key.permissions if allows(effective, p))
        self._held[project_id] = effective
        return effective

    async def require(self, permission: str, *, project_id: str | None = None) -> None:
        if not allows(await self.held(project_id), permission):
            raise Forbidden(f"this needs the permission {permission!r}")

    async def refuse_escalation(
        self, granted: Iterable[str], what: str, *, project_id: str | None = None
    ) -> None:
        """Refuse a change that grants or takes away ``granted`` unless the caller holds all
        of it (``*`` only for holders of ``*``: owners)."""
        held = await self.held(project_id)
        wanted = frozenset(granted)
        if ALL in wanted and ALL not in held:
            raise Escalation(f"only an owner may grant or take away {what}")
        missing = sorted(p for p in wanted if p != ALL and not allows(held, p))
        if missing:
            raise Escalation(f"{what} carries permissions you do not hold: {', '.join(missing)}")

    async def project_scope(self, project: str | None) -> str | None:
        """The id of the organization's project named by id or slug (404 for another's), or
        None (organization level) when none is named."""
        return (await self.unit.orgs.get_project(self.org.id, project)).id if project else None

    async def role_ids(self, refs: Iterable[str], *, project_id: str | None = None) -> set[str]:
        """The ids of roles named by name or id at one level (404 for an unknown one)."""
        rbac, org_id = self.unit.rbac, self.org.id
        return {(await rbac.get_role(org_id, ref, project_id=project_id)).id for ref in refs}

    async def refuse_role_escalation(
        self, role_ids: Collection[str], what: str, *, project_id: str | None = None
    ) -> None:
        granted = await self.unit.rbac.permissions_of_roles(self.org.id, role_ids)
        await self.refuse_escalation(granted, what, project_id=project_id)

    def open_cursor(self, kind: str, cursor: str | None) -> str | None:
        """The service cursor inside a cursor this list handed out (400 otherwise)."""
        return open_list_cursor(self.cursor_key, f"{self.org.id}|{kind}", cursor)

    def seal_cursor(self, kind: str, position: str | None) -> str | None:
        return seal_list_cursor(self.cursor_key, f"{self.org.id}|{kind}", position)

    def open_before(self, kind: str, cursor: str | None) -> int | None:
        """For a list numbered newest first (audit events, logged decisions, policy
        versions): the number the page starts below, from a cursor of :meth:`seal_before`."""
        position = self.open_cursor(kind, cursor)
        return None if position is None else int(position)

    def seal_before(self, kind: str, numbers: Sequence[int], limit: int) -> str | None:
        """The cursor of the page after one whose items carry ``numbers``; None when it was
        the last (shorter than ``limit``)."""
        return self.seal_cursor(kind, str(numbers[-1]) if len(numbers) == limit else None)


def open_list_cursor(key: bytes, scope: str, cursor: str | None) -> str | None:
    """The service's position inside a cursor handed out for the list ``scope`` (an
    organization and a kind of resource); ``invalid_cursor`` (400) for any other."""
    if cursor is None:
        return None
    try:
        return open_cursor(key, scope, cursor)
    except InvalidCursor:
        raise CursorRefused("the cursor is invalid or belongs to another list") from None


def seal_list_cursor(key: bytes, scope: str, position: str | None) -> str | None:
    return None if position is None else seal_cursor(key, scope, position)


async def _enter_org(unit: Unit, caller: Caller, ref: str) -> Organization:
    """The organization of the path, if the caller may act in it; else ``not_found``."""
    try:
        org = await unit.orgs.resolve(ref)
    except NotFound:
        raise NotFound("no such organization") from None
    if caller.key is not None and caller.key.organization_id != org.id:
        raise NotFound("no such organization")
    # A user's token, or a key of a user: the user must (still) be a member.
    user_id = caller.user_id
    if user_id is not None and not await unit.orgs.is_member(org.id, user_id):
        raise NotFound("no such organization")
    return org


def _raise(outcome: T | TenancyError) -> T:
    if isinstance(outcome, TenancyError):
        raise ApiError(status_of(outcome.code), outcome.code, outcome.message) from outcome
    return outcome


async def run_as_caller(
    request: Request,
    action: str,
    work: Callable[[Unit, Caller], Awaitable[T]],
    *,
    change: bool = True,
) -> T:
    """Authenticate, then run ``work`` in one unit of work. A change (``change``) runs in
    ``Unit.attempt``: refused, it leaves nothing and is audited as a failure of ``action``."""
    rt = runtime_of(request)
    async with rt.unit() as unit:
        await rt.catch_up(unit)
        caller = await caller_from_request(unit, request)
        outcome: T | TenancyError
        if change:
            outcome = await unit.attempt(
                lambda: work(unit, caller), action=action, actor=caller.actor
            )
        else:
            try:
                outcome = await work(unit, caller)
            except TenancyError as exc:
                outcome = exc
    return _raise(outcome)


async def in_org(
    request: Request,
    org_ref: str,
    action: str,
    work: Callable[[OrgCall], Awaitable[T]],
    *,
    change: bool = True,
) -> T:
    """:func:`run_as_caller` inside the organization ``org_ref`` (404 unless the caller may
    act there); a refused change is audited with the organization."""
    rt = runtime_of(request)
    async with rt.unit() as unit:
        await rt.catch_up(unit)
        caller = await caller_from_request(unit, request)
        details: dict[str, object] = {}

        async def scoped() -> T:
            org = await _enter_org(unit, caller, org_ref)
            details["organization_id"] = org.id
            return await work(OrgCall(unit, caller, org, rt.api_cursor_key))

        outcome: T | TenancyError
        if change:
            outcome = await unit.attempt(scoped, action=action, actor=caller.actor, details=details)
        else:
            try:
                outcome = await scoped()
            except TenancyError as exc:
                outcome = exc
    return _raise(outcome)
