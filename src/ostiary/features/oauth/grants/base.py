"""What a grant handler gets to work with, and what it returns.

:class:`UserTokens` mints what the authorization code grant (RFC 6749 section 4.1.4) and the
refresh token grant (RFC 6749 section 5.1 via section 6) return for a user: an RFC 9068 access
token and, when ``openid`` is granted, an OpenID Connect ID token (Core 1.0 sections 2 and
3.1.3.3, ``at_hash`` per 3.1.3.6), both carrying the sign-in the code or refresh family records
(``sid``, ``auth_time``, ``acr``, ``amr``) and the claims the ``claims`` parameter asked for
(Core 1.0 section 5.5; the access token names the userinfo ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ostiary.features.clients.models import Client
from ostiary.features.clock import Clock
from ostiary.features.oauth.ports import ApiKeyVerifier, AuthorizationCodeStore, RefreshTokenStore
from ostiary.features.oauth.revocation import RevocationService
from ostiary.features.oauth.tokens import AccessTokenRequest, MintedToken, TokenMinter
from ostiary.protocol.claims import ClaimsRequest
from ostiary.protocol.forms import form_values
from ostiary.protocol.jose import Alg
from ostiary.protocol.oauth_errors import ProtocolError

__all__ = [
    "ORG_ROLES_SCOPE",
    "GrantContext",
    "GrantHandler",
    "OAuthPolicy",
    "OrgDirectory",
    "SignInRecord",
    "TokenResponse",
    "UserDirectory",
    "UserTokens",
    "org_claims_for",
    "requested_claims",
    "token_audience",
]

TokenResponse = dict[str, Any]


def token_audience(form: Mapping[str, str], granted: list[str], issuer: str) -> list[str]:
    """The access token's ``aud`` for a token request (RFC 8707 section 2.2).

    ``granted`` is what the grant covers: the resources recorded on the code or refresh
    family, or those a client_credentials client registered; none means this issuer. Without
    ``resource`` the token is for all of them; with one or more (the parameter may repeat),
    each must be granted (``invalid_target`` otherwise) and the token is for exactly those.
    """
    allowed = granted or [issuer]
    requested = form_values(form, "resource")
    if not requested:
        return list(allowed)
    if any(resource not in allowed for resource in requested):
        raise ProtocolError("invalid_target", "The requested resource is not part of this grant.")
    return list(dict.fromkeys(requested))


@dataclass(frozen=True, slots=True)
class OAuthPolicy:
    issuer: str
    access_token_ttl: timedelta
    id_token_ttl: timedelta
    refresh_token_ttl: timedelta
    code_ttl: timedelta = timedelta(seconds=60)
    # The longest any token may live (config.TokenSlice.max_token_ttl): a client's own access
    # or ID token lifetime is cut to it (a client registered before the operator lowered
    # OSTIARY_CLIENT_TOKEN_TTL_MAX_SECONDS), so that no token outlives the revocations that
    # cover it or the signing key that verifies it.
    client_token_ttl_max: timedelta | None = None
    # Deployment defaults for clients registered without their own algorithms
    # (config.TokenSlice; RS256 ID tokens per OpenID Connect Core 1.0 section 15.1).
    id_token_alg: Alg = "RS256"  # noqa: S105 (an algorithm name)
    access_token_alg: Alg = "ES256"  # noqa: S105
    # Access tokens of the API-key token exchange (grants/token_exchange.py;
    # OSTIARY_API_KEY_TOKEN_TTL_SECONDS), never past the key's own expiry.
    api_key_token_ttl: timedelta = timedelta(seconds=300)

    def id_alg(self, client: Client) -> Alg:
        return client.id_token_signed_response_alg or self.id_token_alg

    def access_alg(self, client: Client) -> Alg:
        return client.access_token_signed_response_alg or self.access_token_alg

    def _client_ttl(self, seconds: int) -> timedelta:
        ttl = timedelta(seconds=seconds)
        cap = self.client_token_ttl_max
        return ttl if cap is None else min(ttl, cap)

    def access_ttl(self, client: Client) -> timedelta:
        return (
            self._client_ttl(client.access_token_ttl)
            if client.access_token_ttl
            else (self.access_token_ttl)
        )

    def id_ttl(self, client: Client) -> timedelta:
        return self._client_ttl(client.id_token_ttl) if client.id_token_ttl else self.id_token_ttl

    def refresh_ttl(self, client: Client) -> timedelta:
        return (
            timedelta(seconds=client.refresh_token_ttl)
            if client.refresh_token_ttl
            else (self.refresh_token_ttl)
        )


class UserDirectory(Protocol):
    """What grants need to know of users and sessions (served by other features' services)."""

    async def user_claims(
        self, user_id: str, scopes: tuple[str, ...], extra: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        """Claims for the ID token / userinfo (those of ``scopes`` and the ``extra`` ones
        asked for by name), or None if the user is gone or disabled."""
        ...

    async def session_active(self, sid: str) -> bool:
        """The browser session is live: not ended, within its idle and absolute timeouts."""
        ...

    async def session_expires_at(self, sid: str) -> datetime | None:
        """A live session's absolute expiry; None if it is not live. Not activity."""
        ...


# The scope that adds ``org_roles`` and ``permissions`` to an org-scoped client's tokens.
ORG_ROLES_SCOPE = "roles"


class OrgDirectory(Protocol):
    """What org-scoped clients' grants need of organizations (features/rbac/claims.py)."""

    async def org_claims(
        self, org_id: str, user_id: str, *, roles: bool, amr: list[str]
    ) -> dict[str, Any] | None:
        """``org_id`` and, with ``roles``, ``org_roles`` and ``permissions`` of the user in
        the organization; None when the user is not a member any more, or the sign-in
        (``amr``) is below the acr the organization requires."""
        ...


@dataclass(slots=True)
class GrantContext:
    codes: AuthorizationCodeStore
    refresh: RefreshTokenStore
    revocation: RevocationService
    minter: TokenMinter
    users: UserDirectory
    policy: OAuthPolicy
    pepper: bytes
    clock: Clock
    orgs: OrgDirectory | None = None
    # The API key feature, built on first use (only the token exchange needs it).
    api_keys: Callable[[], ApiKeyVerifier] | None = None

    def now(self) -> datetime:
        return self.clock.now()


async def org_claims_for(
    ctx: GrantContext,
    client: Client,
    org_id: str | None,
    user_id: str,
    scopes: tuple[str, ...],
    amr: list[str],
) -> dict[str, Any] | None:
    """An org-scoped client's organization claims for a code or refresh family; None for
    other clients. The organization is the one recorded at the grant; a user who left it, or
    whose sign-in is below what it now requires, gets ``invalid_grant`` (the family is of no
    more use: a new sign-in picks the organization again)."""
    if not client.org_scoped:
        return None
    if org_id is None or ctx.orgs is None:
        raise ProtocolError("invalid_grant", "The grant names no organization.")
    claims = await ctx.orgs.org_claims(org_id, user_id, roles=ORG_ROLES_SCOPE in scopes, amr=amr)
    if claims is None:
        raise ProtocolError(
            "invalid_grant",
            "The user is no longer a member of the organization, or the organization now "
            "requires a stronger sign-in.",
        )
    return claims


class GrantHandler(Protocol):
    async def handle(
        self, ctx: GrantContext, client: Client, form: dict[str, str]
    ) -> TokenResponse: ...


class SignInRecord(Protocol):
    """What an authorization code or a refresh family keeps of the user's sign-in."""

    @property
    def user_id(self) -> str: ...
    @property
    def sid(self) -> str | None: ...
    @property
    def auth_time(self) -> datetime: ...
    @property
    def acr(self) -> str | None: ...
    @property
    def amr(self) -> list[str]: ...
    @property
    def resources(self) -> list[str]: ...
    @property
    def claims_request(self) -> dict[str, Any] | None: ...


def requested_claims(sign_in: SignInRecord, target: str) -> tuple[str, ...]:
    """The user's claims the sign-in's ``claims`` parameter asked for at ``target``
    ("userinfo" or "id_token"; OIDC Core 5.5)."""
    request = ClaimsRequest.from_json(sign_in.claims_request)
    return request.user_claims(target) if request is not None else ()


@dataclass(frozen=True, slots=True)
class UserTokens:
    """The tokens one code redemption or one refresh issues to ``client`` for a sign-in.

    Two steps, so that a grant can record the access token's ``jti`` (or spend a code)
    between minting it and answering.
    """

    ctx: GrantContext
    client: Client
    sign_in: SignInRecord
    scope: str
    now: datetime
    # The refresh token family the grant issues from or starts, named in the access token so
    # that revoking the family revokes it (RFC 7009 section 2.1).
    family_id: str | None = None
    # RFC 8707 section 2.2: the resources this request asked for (``token_audience``); None:
    # all the recorded ones.
    audience: list[str] | None = None
    # An org-scoped client's organization claims (org_claims_for), in both tokens.
    org_claims: dict[str, Any] | None = None

    async def access_token(self) -> MintedToken:
        """RFC 9068 access token; audience the recorded resources (RFC 8707) or the issuer."""
        ctx, sign_in = self.ctx, self.sign_in
        return await ctx.minter.access_token(
            AccessTokenRequest(
                client_id=self.client.client_id,
                subject=sign_in.user_id,
                scope=self.scope,
                audience=self.audience or sign_in.resources or [ctx.policy.issuer],
                ttl=ctx.policy.access_ttl(self.client),
                alg=ctx.policy.access_alg(self.client),
                sid=sign_in.sid,
                auth_time=sign_in.auth_time,
                acr=sign_in.acr,
                amr=sign_in.amr,
                family_id=self.family_id,
                userinfo_claims=requested_claims(sign_in, "userinfo"),
                extra_claims=self.org_claims,
            ),
            self.now,
        )

    async def response(
        self,
        access: MintedToken,
        *,
        refresh_token: str | None,
        id_token_claims: dict[str, Any] | None,
        nonce: str | None,
    ) -> TokenResponse:
        """The token response (RFC 6749 section 5.1); an ID token when claims are given.

        ``auth_time`` is always the original sign-in's, and on refresh the caller passes no
        ``nonce`` (OpenID Connect Core 1.0 section 12.2).
        """
        response: TokenResponse = {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": access.expires_in,
            "scope": self.scope,
        }
        if refresh_token is not None:
            response["refresh_token"] = refresh_token
        if id_token_claims is not None:
            ctx, client, sign_in = self.ctx, self.client, self.sign_in
            response["id_token"] = await ctx.minter.id_token(
                client_id=client.client_id,
                subject=sign_in.user_id,
                now=self.now,
                ttl=ctx.policy.id_ttl(client),
                alg=ctx.policy.id_alg(client),
                auth_time=sign_in.auth_time,
                nonce=nonce,
                sid=sign_in.sid,
                acr=sign_in.acr,
                amr=sign_in.amr,
                access_token=access.token,
                extra_claims={**id_token_claims, **(self.org_claims or {})},
            )
        return response
