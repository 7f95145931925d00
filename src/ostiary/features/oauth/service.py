"""The authorization server's use cases beyond grants: authorization codes and consent,
introspection (RFC 7662), revocation (RFC 7009), userinfo (OIDC Core section 5.3; RFC 6750
section 3.1 ``invalid_token`` for a token whose audience is not this issuer), and the token
side of ending sessions (OpenID RP-Initiated Logout 1.0 section 2).

Offline access (OpenID Connect Core 1.0 section 11): ``offline_access`` is granted only with the
user's explicit consent, remembered per client and shown on the consent page ("Stay signed in
to the application when you are away"). First-party clients skip the consent page for every
other scope, but not for this one: section 11 asks the OP to "always obtain consent to returning
a Refresh Token that allows offline access", and a first-party label is our setting, not the
user's choice. A request that cannot show the page (``prompt=none``) has ``offline_access``
ignored, as section 11 says, rather than refused. Only ``response_type=code`` exists here, so
the "code is returned" condition always holds.

Claims (OIDC Core sections 5.4 and 5.5): userinfo releases the claims of the granted scopes
plus those the ``claims`` parameter asked for in its ``userinfo`` member (the access token
names them in ``ost_claims``, tokens.py); only claims with a value are released. A claim asked
for one by one is the user's to approve like a scope: the consent page lists it, and the
consent remembers it (``Consent.claims``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ostiary.features.cache import Generations
from ostiary.features.clients.models import Client
from ostiary.features.keys.service import KeyService
from ostiary.features.oauth.access_tokens import AccessTokens
from ostiary.features.oauth.authorize import AuthorizationRequest
from ostiary.features.oauth.grants import (
    GRANT_HANDLERS,
    TOKEN_EXCHANGE_GRANT,
    GrantContext,
    TokenResponse,
)
from ostiary.features.oauth.grants.refresh_token import REFRESH_PREFIX
from ostiary.features.oauth.grants.token_exchange import TOKEN_EXCHANGE
from ostiary.features.oauth.models import AuthorizationCode, Consent
from ostiary.features.oauth.ports import ConsentStore
from ostiary.features.oauth.tokens import CLAIMS_CLAIM
from ostiary.features.sessions.models import Session
from ostiary.protocol.claims import RELEASABLE_CLAIMS
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.oidc import acr_answer
from ostiary.protocol.opaque_secrets import new_secret, secret_digest
from ostiary.protocol.scopes import CLAIMS_BY_SCOPE, parse_scope

__all__ = ["OAuthService", "extra_claims", "user_claims_for"]

CODE_PREFIX = "ost_ac_"
OFFLINE_ACCESS = "offline_access"


class OAuthService:
    """``context`` builds the grants' context when first needed: an introspection or
    revocation of an access token needs none of it (its stores, the revocation service, the
    minter), and building them was about 3 % of an introspection."""

    def __init__(
        self,
        context: Callable[[], GrantContext],
        consents: ConsentStore,
        keys: KeyService,
        access_tokens: AccessTokens,
        generations: Generations | None = None,
    ) -> None:
        self._context = context
        self._built: GrantContext | None = None
        self._consents = consents
        self._keys = keys
        self._tokens = access_tokens
        # The account page lists consents (features/cache.py); unwired: a private counter.
        self._generations = generations or Generations()

    @property
    def _ctx(self) -> GrantContext:
        ctx = self._built
        if ctx is None:
            ctx = self._built = self._context()
        return ctx

    # -- authorization endpoint --------------------------------------------------------

    async def needs_consent(self, user_id: str, request: AuthorizationRequest) -> bool:
        """Whether the consent page must be shown (see the module docstring on offline access)."""
        wanted = set(request.scopes)
        if "none" in request.prompt:
            wanted.discard(OFFLINE_ACCESS)  # ignored when it cannot be asked (Core section 11)
        if request.client.first_party:
            wanted &= {OFFLINE_ACCESS}
            if not wanted:
                return False
        consent = await self._consents.get(user_id, request.client.client_id)
        if consent is None or not wanted <= set(consent.scopes):
            return True
        return not set(extra_claims(request)) <= set(consent.claims)

    async def grant_consent(
        self, user_id: str, client: Client, request: AuthorizationRequest
    ) -> None:
        now = self._ctx.now()
        existing = await self._consents.get(user_id, client.client_id)
        merged = list(dict.fromkeys([*(existing.scopes if existing else []), *request.scopes]))
        claims = list(
            dict.fromkeys([*(existing.claims if existing else []), *extra_claims(request)])
        )
        await self._consents.put(
            Consent(
                user_id,
                client.client_id,
                merged,
                existing.created_at if existing else now,
                now,
                claims,
            )
        )
        self._generations.bump(user_id)

    async def consents_for(self, user_id: str) -> list[Consent]:
        return await self._consents.list_for_user(user_id)

    async def withdraw_consent(self, user_id: str, client_id: str) -> bool:
        """Forget the grant and revoke every token it produced (refresh and access)."""
        removed = await self._consents.delete(user_id, client_id)
        self._generations.bump(user_id)
        now = self._ctx.now()
        await self._ctx.refresh.revoke_families(
            now, "consent_withdrawn", user_id=user_id, client_id=client_id
        )
        await self._ctx.revocation.revoke("user_client", f"{user_id}|{client_id}")
        return removed

    async def issue_code(
        self, request: AuthorizationRequest, session: Session, *, org_id: str | None = None
    ) -> str:
        """A code for ``session``; ``org_id``: an org-scoped client's organization (the
        user's active one, checked by the caller)."""
        now = self._ctx.now()
        scope = request.scope
        if OFFLINE_ACCESS in request.scopes:
            # Offline access only with the user's explicit consent (Core section 11), else
            # ignored: the code, and the tokens, are granted without it.
            consent = await self._consents.get(session.user_id, request.client.client_id)
            if consent is None or OFFLINE_ACCESS not in consent.scopes:
                scope = " ".join(s for s in request.scopes if s != OFFLINE_ACCESS)
        value = new_secret(CODE_PREFIX)
        await self._ctx.codes.add(
            AuthorizationCode(
                code_hash=secret_digest(self._ctx.pepper, value),
                client_id=request.client.client_id,
                user_id=session.user_id,
                sid=session.sid,
                redirect_uri=request.redirect_uri,
                scope=scope,
                code_challenge=request.code_challenge,
                auth_time=session.auth_time,
                created_at=now,
                expires_at=now + self._ctx.policy.code_ttl,
                resources=list(request.resources),
                nonce=request.nonce,
                amr=list(session.amr),
                acr=acr_answer(session.amr, request.requested_acr()[0]),
                claims_request=request.claims_request.to_json() if request.claims_request else None,
                redirect_uri_sent=request.redirect_uri_sent,
                org_id=org_id,
            )
        )
        return value

    # -- token endpoint ----------------------------------------------------------------

    async def token(
        self, client: Client | None, form: dict[str, str], *, client_ip: str | None = None
    ) -> TokenResponse:
        """Dispatch to the grant. ``client`` None: no client authenticated, which only the
        API-key token exchange accepts (its key authenticates the request)."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise ProtocolError("invalid_request", "grant_type is required.")
        if grant_type == TOKEN_EXCHANGE:
            return await TOKEN_EXCHANGE_GRANT.exchange(self._ctx, client, form, client_ip)
        handler = GRANT_HANDLERS.get(grant_type)
        if handler is None:
            raise ProtocolError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")
        if client is None:
            raise ProtocolError("invalid_client", "Client authentication is required.")
        return await handler.handle(self._ctx, client, form)

    # -- access token validation (our own tokens) ----------------------------------------

    async def validate_access_token(self, token: str) -> dict[str, Any] | None:
        """Claims of an active access token issued here, or None (RFC 7662 "active")."""
        return await self._tokens.validate(token)

    # -- introspection (RFC 7662) -----------------------------------------------------

    async def introspect(self, caller: Client, token: str, hint: str | None) -> dict[str, Any]:
        """RFC 7662 section 2, for an authenticated confidential ``caller``.

        Section 4 (a token's claims are for those meant to see them): an access token is
        described to the client it was issued to, and to a resource server registered for one
        of its audiences (``Client.introspection_audiences``); a refresh token only to its
        client. Anyone else learns ``{"active": false}``, as for an unknown token (section 2.2
        allows it), so a caller cannot tell another client's token from garbage.
        """
        refresh_first = hint == "refresh_token" or token.startswith(REFRESH_PREFIX)
        if refresh_first:
            result = await self._introspect_refresh(caller, token)
            if result is not None:
                return result
        claims = await self.validate_access_token(token)
        if claims is not None:
            if not _may_introspect(caller, claims):
                return {"active": False}
            body = {"active": True, "token_type": "Bearer"}
            for name in (
                "scope",
                "client_id",
                "sub",
                "aud",
                "iss",
                "exp",
                "iat",
                "jti",
                "sid",
                "auth_time",
                "acr",
                "amr",
            ):
                if name in claims:
                    body[name] = claims[name]
            return body
        if not refresh_first:
            result = await self._introspect_refresh(caller, token)
            if result is not None:
                return result
        return {"active": False}

    async def _introspect_refresh(self, caller: Client, token: str) -> dict[str, Any] | None:
        if not token.startswith(REFRESH_PREFIX) or len(token) > 256:
            return None
        found = await self._ctx.refresh.get_token(secret_digest(self._ctx.pepper, token))
        if found is None:
            return None
        record, family = found
        if family.client_id != caller.client_id:
            return {"active": False}  # a refresh token concerns its client alone
        now = self._ctx.now()
        if record.used_at is not None or family.revoked_at is not None or now >= record.expires_at:
            return {"active": False}
        if await self._ctx.users.user_claims(family.user_id, ()) is None:
            return {"active": False}
        if family.sid is not None and not await self._ctx.users.session_active(family.sid):
            return {"active": False}  # session-bound, and its session ended or timed out
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": family.client_id,
            "sub": family.user_id,
            "scope": family.scope,
            "exp": int(record.expires_at.timestamp()),
            "iat": int(record.created_at.timestamp()),
            "iss": self._ctx.policy.issuer,
        }

    # -- revocation (RFC 7009) --------------------------------------------------------

    async def revoke(self, client: Client, token: str, hint: str | None) -> None:
        """Revoke if the token belongs to ``client``; unknown tokens are not an error (2.2).

        A refresh token takes its family with it, and the access tokens minted from the family
        (section 2.1: "SHOULD also invalidate all access tokens based on the same
        authorization grant"); they name it in ``ost_family``. An access token goes alone
        (revoking the refresh token too is optional there, and the client can do it).
        """
        if token.startswith(REFRESH_PREFIX) and len(token) <= 256:
            found = await self._ctx.refresh.get_token(secret_digest(self._ctx.pepper, token))
            if found is not None and found[1].client_id == client.client_id:
                family_id = found[1].family_id
                await self._ctx.refresh.revoke_families(
                    self._ctx.now(), "revoked_by_client", family_id=family_id
                )
                await self._ctx.revocation.revoke("family", family_id)
            return
        claims = await self.validate_access_token(token)
        if claims is not None and claims.get("client_id") == client.client_id:
            # The entry is needed only while the token could be presented.
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            await self._ctx.revocation.revoke("jti", str(claims["jti"]), expires_at=expires)

    # -- userinfo (OIDC Core section 5.3) -----------------------------------------------

    async def userinfo(self, token: str) -> dict[str, Any]:
        claims = await self.validate_access_token(token)
        if claims is None:
            raise ProtocolError("invalid_token", "The access token is invalid or expired.")
        # RFC 9068 section 4 / RFC 8707 section 2: a token is for the audiences it names. One
        # minted for a resource server only (``resource`` at /authorize or /token) is not for
        # the userinfo endpoint, which accepts tokens whose ``aud`` includes this issuer.
        if self._ctx.policy.issuer not in _audiences(claims):
            raise ProtocolError(
                "invalid_token", "The access token is not intended for this server."
            )
        scopes = parse_scope(str(claims.get("scope", "")))
        if "openid" not in scopes:
            raise ProtocolError("insufficient_scope", "The openid scope is required.")
        asked = claims.get(CLAIMS_CLAIM)
        extra = tuple(c for c in asked if isinstance(c, str)) if isinstance(asked, list) else ()
        info = await self._ctx.users.user_claims(str(claims["sub"]), scopes, extra)
        if info is None:
            raise ProtocolError("invalid_token", "The user is no longer active.")
        return {"sub": claims["sub"], **info}

    # -- ending sessions -----------------------------------------------------------------

    async def sessions_ended(self, sids: list[str]) -> None:
        """Revoke the session-bound refresh families and the access tokens of ended browser
        sessions. Offline families carry no ``sid``: they survive (Core section 11)."""
        now = self._ctx.now()
        for sid in sids:
            await self._ctx.refresh.revoke_families(now, "session_ended", sid=sid)
            await self._ctx.revocation.revoke("sid", sid)

    async def user_disabled(self, user_id: str) -> None:
        await self.end_user_grants(user_id, "user_disabled")

    async def end_user_grants(self, user_id: str, reason: str) -> int:
        """Revoke every refresh family of a user, offline ones included, and every access
        token issued to the user so far; returns how many families were live."""
        families = await self._ctx.refresh.revoke_families(self._ctx.now(), reason, user_id=user_id)
        await self._ctx.revocation.revoke("user", user_id)
        return len(families)

    async def verify_id_token_hint(self, token: str) -> dict[str, Any] | None:
        """Claims of an ID token we issued (expired ones accepted, per RP-Initiated Logout 2)."""
        decoded = await self._tokens.decode_own(token)
        if decoded is None:
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self._ctx.policy.issuer or decoded.header.get("typ") == "at+jwt":
            return None
        return claims


def _may_introspect(caller: Client, claims: dict[str, Any]) -> bool:
    """The RFC 7662 section 4 rule (see ``OAuthService.introspect``)."""
    if claims.get("client_id") == caller.client_id:
        return True
    served = caller.introspection_audiences
    return bool(served) and any(aud in served for aud in _audiences(claims))


def _audiences(claims: dict[str, Any]) -> list[str]:
    """``aud`` as a list (RFC 7519 section 4.1.3: a string or an array of strings)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


def extra_claims(request: AuthorizationRequest) -> tuple[str, ...]:
    """The user's claims the ``claims`` parameter asks for beyond those of the requested
    scopes (OIDC Core 5.5): they need the user's consent like a scope."""
    if request.claims_request is None:
        return ()
    covered = {c for s in request.scopes for c in CLAIMS_BY_SCOPE.get(s, ())}
    asked = (
        *request.claims_request.user_claims("userinfo"),
        *request.claims_request.user_claims("id_token"),
    )
    return tuple(dict.fromkeys(c for c in asked if c not in covered))


def user_claims_for(
    user: Any, scopes: tuple[str, ...], extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """OIDC Core 5.4 claims of a user for the granted scopes, plus the ``extra`` ones asked
    for by name (section 5.5); a claim without a value is left out."""
    wanted = {c for s in scopes for c in CLAIMS_BY_SCOPE.get(s, ())}
    wanted.update(c for c in extra if c in RELEASABLE_CLAIMS)
    if not wanted:
        return {}
    values: dict[str, Any] = {
        "name": user.name,
        "email": user.email,
        "email_verified": bool(user.email_verified),
        "updated_at": int(user.updated_at.astimezone(UTC).timestamp()),
        **user.claims,
    }
    if values.get("phone_number"):
        values["phone_number_verified"] = bool(values.get("phone_number_verified"))
    else:
        values.pop("phone_number_verified", None)
    return {
        name: value
        for name, value in values.items()
        if name in wanted and value is not None and value != "" and value != {}
    }
