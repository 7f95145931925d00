"""OAuth 2.0 Token Exchange (RFC 8693) of an API key for a short-lived access token.

- Request (RFC 8693 section 2.1): ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``,
  ``subject_token`` = the API key, ``subject_token_type`` =
  ``urn:ostiary:params:oauth:token-type:api-key`` (a URI of our own, as section 3 allows).
  ``requested_token_type``, when sent, must be ``urn:ietf:params:oauth:token-type:access_token``;
  ``actor_token`` (delegation, section 1.1) is not supported here.
- The key authenticates the exchange: no client is needed (section 2.1 leaves client
  authentication to the deployment). When a client does authenticate, its id is the token's
  ``client_id``; otherwise ``client_id`` is the key id (``ost_key_id``), so that a resource
  server always sees which credential the token came from.
- Response (section 2.2.1): ``access_token`` (an RFC 9068 JWT signed like the other access
  tokens), ``issued_token_type`` = ``urn:ietf:params:oauth:token-type:access_token``,
  ``token_type`` Bearer, ``expires_in``: ``OSTIARY_API_KEY_TOKEN_TTL_SECONDS`` (default 300), never
  past the key's own expiry. Claims: ``sub`` (the owner: a user id or a service-account id),
  ``org_id``, ``ost_key_id``, ``ost_owner_type``, ``permissions`` (the key's narrowed set),
  ``models`` (when the key is restricted) and the usual ``iss aud exp iat jti client_id``.
- ``scope`` (section 2.1) names permissions and narrows the set further (``invalid_scope``
  for one the key does not have); ``resource``/``audience`` (section 2.1, RFC 8707) pick the
  audience as in the other grants: the authenticated client's registered resources, else this
  issuer (``invalid_target`` otherwise).
- Revoking the key, removing its owner from the organization, or disabling or deleting its
  service account also revokes the tokens exchanged for it so far (revocation kind
  ``api_key``, features/oauth/revocation.py): introspection and userinfo refuse them on every
  node; resource servers that verify offline see them expire within the TTL.
- An invalid key, of whatever kind, is ``invalid_request`` with one description (section
  2.2.2); the key's IP allowlist applies to the exchanging client's address.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ostiary.features.clients.models import Client
from ostiary.features.oauth.grants.base import GrantContext, TokenResponse, token_audience
from ostiary.features.oauth.tokens import API_KEY_CLAIM, AccessTokenRequest
from ostiary.protocol.forms import form_values
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.permissions import ALL, allows

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "API_KEY_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "TokenExchangeGrant",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URI)
API_KEY_TOKEN_TYPE = "urn:ostiary:params:oauth:token-type:api-key"  # noqa: S105 (a URI)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
_INVALID_KEY = "The subject_token is not a valid API key."
_MAX_SCOPE = 2048


def _narrowed(requested: str | None, permissions: frozenset[str]) -> frozenset[str] | None:
    """The permissions ``scope`` asks for, each held (``invalid_scope`` otherwise); None
    when no scope was sent."""
    if requested is None:
        return None
    if len(requested) > _MAX_SCOPE:
        raise ProtocolError("invalid_scope", "scope is too long.")
    names = requested.split(" ")
    if not requested or any(not name for name in names):
        raise ProtocolError("invalid_scope", "scope must be permissions separated by one space.")
    missing = [name for name in names if not allows(permissions, name) or name == ALL]
    if ALL in names and ALL in permissions:
        missing.remove(ALL)
    if missing:
        shown = ", ".join(sorted(set(missing))[:5])
        raise ProtocolError("invalid_scope", f"The key does not hold: {shown[:300]}.")
    return frozenset(names)


class TokenExchangeGrant:
    async def handle(
        self, ctx: GrantContext, client: Client | None, form: dict[str, str]
    ) -> TokenResponse:
        """Without the client's address: a key with an IP allowlist is refused."""
        return await self.exchange(ctx, client, form, None)

    async def exchange(
        self,
        ctx: GrantContext,
        client: Client | None,
        form: dict[str, str],
        client_ip: str | None,
    ) -> TokenResponse:
        if form.get("subject_token_type") != API_KEY_TOKEN_TYPE:
            raise ProtocolError(
                "invalid_request", f"subject_token_type must be {API_KEY_TOKEN_TYPE}."
            )
        requested_type = form.get("requested_token_type")
        if requested_type is not None and requested_type != ACCESS_TOKEN_TYPE:
            raise ProtocolError(
                "invalid_request", f"requested_token_type must be {ACCESS_TOKEN_TYPE}."
            )
        if "actor_token" in form or "actor_token_type" in form:
            raise ProtocolError("invalid_request", "actor_token is not supported.")
        subject_token = form.get("subject_token", "")
        if not subject_token:
            raise ProtocolError("invalid_request", "subject_token is required.")
        if ctx.api_keys is None:
            raise ProtocolError("unsupported_grant_type", "API keys are not available here.")
        outcome = await ctx.api_keys().verify(subject_token, ip=client_ip or "")
        principal = outcome.principal
        if principal is None or not outcome.valid:
            hint = outcome.reason or "invalid key"
            raise ProtocolError("invalid_request", _INVALID_KEY, hint=hint)
        scoped = _narrowed(form.get("scope"), principal.permissions)
        permissions = principal.permissions if scoped is None else scoped
        granted = client.resources if client is not None else []
        audiences = form_values(form, "audience")
        if audiences:
            if "resource" in form:
                raise ProtocolError("invalid_request", "Send resource or audience, not both.")
            allowed = granted or [ctx.policy.issuer]
            if any(value not in allowed for value in audiences):
                raise ProtocolError("invalid_target", "The requested audience is not allowed.")
            audience = list(dict.fromkeys(audiences))
        else:
            audience = token_audience(form, granted, ctx.policy.issuer)
        now = ctx.now()
        ttl = ctx.policy.api_key_token_ttl
        cap = ctx.policy.client_token_ttl_max
        if cap is not None:
            ttl = min(ttl, cap)
        if principal.expires_at is not None:
            remaining = principal.expires_at - now
            ttl = min(ttl, timedelta(seconds=int(remaining.total_seconds())))
            if ttl < timedelta(seconds=1):
                raise ProtocolError("invalid_request", _INVALID_KEY, hint="key expires now")
        extra: dict[str, Any] = {
            "org_id": principal.organization_id,
            API_KEY_CLAIM: principal.key_id,
            "ost_owner_type": principal.owner_type,
            "permissions": sorted(permissions),
        }
        if principal.models:
            extra["models"] = list(principal.models)
        scope = " ".join(sorted(scoped)) if scoped is not None else ""
        access = await ctx.minter.access_token(
            AccessTokenRequest(
                client_id=client.client_id if client is not None else principal.key_id,
                subject=principal.owner_id,
                scope=scope,
                audience=audience,
                ttl=ttl,
                alg=ctx.policy.access_alg(client)
                if client is not None
                else ctx.policy.access_token_alg,
                extra_claims=extra,
            ),
            now,
        )
        response: TokenResponse = {
            "access_token": access.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": access.expires_in,
        }
        if scope:
            response["scope"] = scope
        return response
