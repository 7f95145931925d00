"""The refresh token grant, with rotation and reuse detection.

- RFC 6749 section 6: refreshing; the new scope must be a subset of the original one (a wider
  one is refused); section 3.3: a scope the client may no longer have is dropped.
- RFC 8707 section 2.2: ``resource`` may narrow the new access token's audience to resources
  of the original grant (the family keeps them all), ``invalid_target`` otherwise.
- RFC 9700 section 4.14.2 / OAuth 2.1 section 4.3.1: refresh tokens of public clients are
  sender-constrained or rotated; we rotate for every client. Presenting a spent token means
  it was stolen or replayed: the whole family is revoked and so are the access tokens of the
  family's session and client.
- The spend is an atomic compare-and-set in the store, so of N concurrent requests with the
  same token exactly one succeeds (the others are reuse).
- OpenID Connect Core 1.0 section 11 (offline access): a family granted without
  ``offline_access`` is bound to the browser session it was issued in (``sid``): it expires no
  later than the session's absolute timeout and refreshing fails once the session has ended
  (sign-out, revocation, idle or absolute timeout). A refresh is not activity: it never
  extends the browser session. A family granted with ``offline_access`` has no ``sid``: it
  survives sign-out (OpenID Back-Channel Logout 1.0 section 2.7: refresh tokens with offline
  access "normally SHOULD NOT be revoked" at logout) and ends with consent withdrawal,
  revocation, the user's disabling or ``ostiary users end-sessions`` / ``set-password``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, NoReturn

from ostiary.features.clients.models import Client
from ostiary.features.oauth.grants.base import (
    GrantContext,
    TokenResponse,
    UserTokens,
    org_claims_for,
    requested_claims,
    token_audience,
)
from ostiary.features.oauth.models import RefreshFamily, RefreshToken
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.opaque_secrets import new_secret, secret_digest
from ostiary.protocol.scopes import ScopeError, format_scope, granted_scopes, parse_scope

__all__ = [
    "REFRESH_PREFIX",
    "RefreshTokenGrant",
    "issue_refresh_token",
    "new_family",
    "new_refresh_token",
]

REFRESH_PREFIX = "ost_rt_"


def new_family(
    ctx: GrantContext,
    client: Client,
    *,
    user_id: str,
    sid: str | None,
    scope: str,
    resources: list[str],
    auth_time: datetime,
    amr: list[str],
    acr: str | None,
    not_after: datetime | None = None,
    claims_request: dict[str, Any] | None = None,
    org_id: str | None = None,
) -> RefreshFamily:
    """A new family; ``not_after`` caps its expiry (a session-bound family's session's)."""
    now = ctx.now()
    expires_at = now + ctx.policy.refresh_ttl(client)
    return RefreshFamily(
        family_id=secrets.token_urlsafe(16),
        client_id=client.client_id,
        user_id=user_id,
        sid=sid,
        scope=scope,
        resources=resources,
        auth_time=auth_time,
        amr=amr,
        acr=acr,
        created_at=now,
        expires_at=min(expires_at, not_after) if not_after is not None else expires_at,
        claims_request=claims_request,
        org_id=org_id,
    )


def new_refresh_token(ctx: GrantContext, family: RefreshFamily) -> tuple[str, RefreshToken]:
    """A fresh refresh token of ``family``: the value for the client and the record to store."""
    value = new_secret(REFRESH_PREFIX)
    record = RefreshToken(
        token_hash=secret_digest(ctx.pepper, value),
        family_id=family.family_id,
        created_at=ctx.now(),
        expires_at=family.expires_at,
    )
    return value, record


async def issue_refresh_token(ctx: GrantContext, family: RefreshFamily) -> str:
    value, record = new_refresh_token(ctx, family)
    await ctx.refresh.add_token(record)
    return value


class RefreshTokenGrant:
    async def handle(
        self, ctx: GrantContext, client: Client, form: dict[str, str]
    ) -> TokenResponse:
        value = form.get("refresh_token", "")
        if not value:
            raise ProtocolError("invalid_request", "refresh_token is required.")
        if "refresh_token" not in client.grant_types:
            raise ProtocolError("unauthorized_client", "This client may not refresh tokens.")
        found = (
            await ctx.refresh.get_token(secret_digest(ctx.pepper, value))
            if len(value) <= 256
            else None
        )
        if found is None:
            raise ProtocolError("invalid_grant", "The refresh token is invalid.")
        token, family = found
        now = ctx.now()
        if family.client_id != client.client_id:
            raise ProtocolError("invalid_grant", "The refresh token was issued to another client.")
        if family.revoked_at is not None or now >= token.expires_at:
            raise ProtocolError("invalid_grant", "The refresh token is no longer valid.")
        if token.used_at is not None:
            await self._reuse_detected(ctx, family, now)
        if await ctx.users.user_claims(family.user_id, ()) is None:
            raise ProtocolError("invalid_grant", "The user is no longer active.")
        if family.sid is not None and not await ctx.users.session_active(family.sid):
            # Session-bound (no offline_access): lives and dies with the browser session.
            raise ProtocolError(
                "invalid_grant",
                "The refresh token is no longer valid: its session has ended.",
                hint="session ended or timed out",
            )
        original = parse_scope(family.scope)
        try:
            requested = parse_scope(form.get("scope")) or original
        except ScopeError as exc:
            raise ProtocolError("invalid_scope", str(exc)) from exc
        if not set(requested) <= set(original):
            raise ProtocolError("invalid_scope", "A refresh cannot widen the original scope.")
        try:
            # A scope the client may no longer have is dropped (RFC 6749 section 3.3).
            requested = granted_scopes(requested, client.scopes)
        except ScopeError as exc:
            raise ProtocolError("invalid_scope", str(exc)) from exc
        audience = token_audience(form, family.resources, ctx.policy.issuer)
        org_claims = await org_claims_for(
            ctx, client, family.org_id, family.user_id, requested, list(family.amr)
        )
        # Everything is minted first and the rotation is the grant's last step and only write:
        # the response exists only if the spend happened, and a spend never happens without
        # a response to carry its successor.
        tokens = UserTokens(
            ctx,
            client,
            family,
            scope=format_scope(requested),
            now=now,
            family_id=family.family_id,
            audience=audience,
            org_claims=org_claims,
        )
        access = await tokens.access_token()
        refresh_token, successor = new_refresh_token(ctx, family)
        id_token_claims = None
        if "openid" in requested:
            id_token_claims = (
                await ctx.users.user_claims(
                    family.user_id, requested, requested_claims(family, "id_token")
                )
                or {}
            )
        # OpenID Connect Core 1.0 section 12.2: the new ID token keeps the original auth_time
        # and carries no nonce.
        response = await tokens.response(
            access, refresh_token=refresh_token, id_token_claims=id_token_claims, nonce=None
        )
        if not await ctx.refresh.rotate(token.token_hash, now, successor):
            await self._reuse_detected(ctx, family, now)  # lost a race with a concurrent use
        return response

    async def _reuse_detected(
        self, ctx: GrantContext, family: RefreshFamily, now: datetime
    ) -> NoReturn:
        await ctx.refresh.revoke_families(now, "reuse_detected", family_id=family.family_id)
        await ctx.revocation.revoke("user_client", f"{family.user_id}|{family.client_id}")
        raise ProtocolError(
            "invalid_grant",
            "The refresh token was already used; the grant is revoked.",
            hint="refresh token reuse: family revoked",
        )
