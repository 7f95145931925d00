"""The client credentials grant (RFC 6749 section 4.4; RFC 9068 section 2.2: ``sub`` is the
client id). Confidential clients only; scopes limited to the client's allowed set (the others
dropped, RFC 6749 section 3.3, and the granted ``scope`` returned); no refresh
token (section 4.4.3) and no ID token. ``resource`` (RFC 8707 section 2, may repeat) picks
audiences among the client's registered resources; without it, the token is for all of them
(or for this issuer when none are registered)."""

from __future__ import annotations

from ostiary.features.clients.models import Client
from ostiary.features.oauth.grants.base import GrantContext, TokenResponse, token_audience
from ostiary.features.oauth.tokens import AccessTokenRequest
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.scopes import ScopeError, format_scope, granted_scopes, parse_scope

__all__ = ["ClientCredentialsGrant"]


class ClientCredentialsGrant:
    async def handle(
        self, ctx: GrantContext, client: Client, form: dict[str, str]
    ) -> TokenResponse:
        if client.is_public or "client_credentials" not in client.grant_types:
            raise ProtocolError(
                "unauthorized_client", "This client may not use the client_credentials grant."
            )
        try:
            requested = parse_scope(form.get("scope"))
        except ScopeError as exc:
            raise ProtocolError("invalid_scope", str(exc)) from exc
        if "openid" in requested or "offline_access" in requested:
            raise ProtocolError("invalid_scope", "openid and offline_access need a user.")
        try:
            requested = granted_scopes(requested, client.scopes)
        except ScopeError as exc:
            raise ProtocolError("invalid_scope", str(exc)) from exc
        audience = token_audience(form, client.resources, ctx.policy.issuer)
        scope = format_scope(requested)
        access = await ctx.minter.access_token(
            AccessTokenRequest(
                client_id=client.client_id,
                subject=client.client_id,
                scope=scope,
                audience=audience,
                ttl=ctx.policy.access_ttl(client),
                alg=ctx.policy.access_alg(client),
            ),
            ctx.now(),
        )
        response: TokenResponse = {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": access.expires_in,
        }
        if scope:
            response["scope"] = scope
        return response
