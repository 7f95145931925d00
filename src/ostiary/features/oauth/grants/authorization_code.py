"""The authorization code grant (RFC 6749 section 4.1.3, OAuth 2.1 section 4.1.3).

Checks, in the order of RFC 6749 section 4.1.3 and RFC 7636 section 4.6:
the code exists, is unexpired (60 s at most) and unused; it was issued to this client; the
``redirect_uri`` is present if it was in the authorization request, and identical to the one
used there; the PKCE verifier hashes to the stored challenge; ``resource`` values, if any, were
granted with the code (RFC 8707 section 2.2, ``invalid_target``); the session it was issued in
is still alive.

No PKCE downgrade (RFC 9700 section 2.1.1): a code issued with a challenge needs its verifier,
and a ``code_verifier`` sent for a code issued without one is refused (the client's mode
allowed no PKCE at /authorize; an attacker who injected such a code must not pass by adding a
verifier of their own). A public client never redeems a code without PKCE.

The refresh family is bound to that session unless ``offline_access`` was granted (OpenID
Connect Core 1.0 section 11; see ``refresh_token.py``).

Replay (RFC 6749 section 4.1.2: "If an authorization code is used more than once, the
authorization server MUST deny the request and SHOULD revoke (when possible) all tokens
previously issued based on that authorization code"): the refresh family and the access
token issued for the code are revoked.
"""

from __future__ import annotations

from ostiary.features.clients.models import Client
from ostiary.features.oauth.grants.base import (
    GrantContext,
    TokenResponse,
    UserTokens,
    org_claims_for,
    requested_claims,
    token_audience,
)
from ostiary.features.oauth.grants.refresh_token import issue_refresh_token, new_family
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.opaque_secrets import secret_digest
from ostiary.protocol.pkce import verify_s256
from ostiary.protocol.scopes import parse_scope

__all__ = ["AuthorizationCodeGrant"]

_INVALID = "The authorization code is invalid, expired or already used."


class AuthorizationCodeGrant:
    async def handle(
        self, ctx: GrantContext, client: Client, form: dict[str, str]
    ) -> TokenResponse:
        code_value = form.get("code", "")
        if not code_value:
            raise ProtocolError("invalid_request", "code is required.")
        if "authorization_code" not in client.grant_types:
            raise ProtocolError("unauthorized_client", "This client may not use this grant.")
        code_hash = secret_digest(ctx.pepper, code_value) if len(code_value) <= 256 else ""
        code = await ctx.codes.get(code_hash) if code_hash else None
        now = ctx.now()
        if code is None:
            raise ProtocolError("invalid_grant", _INVALID, hint="unknown code")
        if code.consumed_at is not None:
            await self._revoke_what_it_produced(ctx, code.family_id, code.access_jti)
            raise ProtocolError("invalid_grant", _INVALID, hint="code replay: tokens revoked")
        if code.client_id != client.client_id:
            raise ProtocolError("invalid_grant", _INVALID, hint="code of another client")
        if now >= code.expires_at:
            raise ProtocolError("invalid_grant", _INVALID, hint="expired code")
        if code.redirect_uri_sent and "redirect_uri" not in form:
            raise ProtocolError(
                "invalid_request", "redirect_uri is required: the authorization request had it."
            )
        if form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
            raise ProtocolError("invalid_grant", "redirect_uri does not match the request.")
        self._check_pkce(client, code.code_challenge, form)
        audience = token_audience(form, code.resources, ctx.policy.issuer)
        session_expires_at = await ctx.users.session_expires_at(code.sid)
        if session_expires_at is None:
            raise ProtocolError("invalid_grant", _INVALID, hint="session ended")
        scopes = parse_scope(code.scope)
        claims = await ctx.users.user_claims(
            code.user_id, scopes, requested_claims(code, "id_token")
        )
        if claims is None:
            raise ProtocolError("invalid_grant", _INVALID, hint="user disabled or deleted")
        org_claims = await org_claims_for(
            ctx, client, code.org_id, code.user_id, scopes, list(code.amr)
        )
        family = None
        if "refresh_token" in client.grant_types:
            offline = "offline_access" in scopes
            family = new_family(
                ctx,
                client,
                user_id=code.user_id,
                # Offline access outlives the session; otherwise the family is bound to it.
                sid=None if offline else code.sid,
                not_after=None if offline else session_expires_at,
                scope=code.scope,
                resources=code.resources,
                auth_time=code.auth_time,
                amr=code.amr,
                acr=code.acr,
                claims_request=code.claims_request,
                org_id=code.org_id,
            )
        tokens = UserTokens(
            ctx,
            client,
            code,
            scope=code.scope,
            now=now,
            family_id=family.family_id if family else None,
            audience=audience,
            org_claims=org_claims,
        )
        access = await tokens.access_token()
        if not await ctx.codes.consume(
            code.code_hash, now, family.family_id if family else None, access.jti
        ):
            # Another request redeemed it concurrently: that is a replay too (RFC 6749 4.1.2).
            winner = await ctx.codes.get(code.code_hash)
            if winner is not None:
                await self._revoke_what_it_produced(ctx, winner.family_id, winner.access_jti)
            raise ProtocolError("invalid_grant", _INVALID, hint="lost the race for the code")
        refresh_token = None
        if family is not None:
            await ctx.refresh.add_family(family)
            refresh_token = await issue_refresh_token(ctx, family)
        return await tokens.response(
            access,
            refresh_token=refresh_token,
            id_token_claims=claims if "openid" in scopes else None,
            nonce=code.nonce,
        )

    @staticmethod
    def _check_pkce(client: Client, challenge: str | None, form: dict[str, str]) -> None:
        if challenge is None:
            if "code_verifier" in form:
                raise ProtocolError(
                    "invalid_grant",
                    "code_verifier sent, but the authorization request had no code_challenge.",
                )
            if client.is_public:  # /authorize refuses these; never trust a stored row alone
                raise ProtocolError("invalid_grant", _INVALID, hint="public client without PKCE")
            return
        verifier = form.get("code_verifier", "")
        if not verifier:
            raise ProtocolError("invalid_request", "code_verifier is required (PKCE).")
        if not verify_s256(verifier, challenge):
            raise ProtocolError("invalid_grant", "PKCE verification failed.")

    async def _revoke_what_it_produced(
        self, ctx: GrantContext, family_id: str | None, access_jti: str | None
    ) -> None:
        if family_id:
            await ctx.refresh.revoke_families(ctx.now(), "code_replay", family_id=family_id)
            # and the access tokens minted by refreshing it since (RFC 6749 section 4.1.2)
            await ctx.revocation.revoke("family", family_id)
        if access_jti:
            await ctx.revocation.revoke("jti", access_jti)
