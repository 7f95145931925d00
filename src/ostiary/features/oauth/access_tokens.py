"""Checking our own JWTs: the signature against the published keys, then what makes an access
token active (RFC 7662 section 2.2; RFC 9068 section 4: ``typ`` ``at+jwt``, ``iss``, ``exp``,
``iat`` not in the future, and no revocation covering it).

Separate from :class:`~ostiary.features.oauth.service.OAuthService` so that the endpoints that
only authenticate a bearer token (the management API, the AuthZEN decision API) build this and
nothing of the grant machinery per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import Token

from ostiary.features.clock import Clock
from ostiary.features.keys.service import KeyService
from ostiary.features.oauth.verified import VerifiedTokens
from ostiary.protocol.jose import SUPPORTED_ALGS

__all__ = ["CLOCK_SKEW_SECONDS", "AccessTokens", "claims_active"]

_ALGS = list(SUPPORTED_ALGS)  # the algorithms our keys sign with (protocol/jose.py)
_MAX_TOKEN = 8192
CLOCK_SKEW_SECONDS = 60  # an iat this far ahead of our clock is still accepted


class Revocations(Protocol):
    def is_revoked(self, claims: Mapping[str, Any]) -> bool: ...


def claims_active(claims: Mapping[str, Any], now: float, revoked: Revocations) -> bool:
    """Whether a verified token's claims are active at ``now`` (epoch seconds): integer
    ``exp`` after it, ``iat`` at most :data:`CLOCK_SKEW_SECONDS` ahead of it, and not covered
    by the revocation set (disabled users, ended sessions, withdrawn consents and revoked
    tokens are all in it: fed at once on this node, by pub/sub or the 1 s poll on others)."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        return False
    if exp <= now or iat > now + CLOCK_SKEW_SECONDS:
        return False
    return not revoked.is_revoked(claims)


class AccessTokens:
    def __init__(
        self,
        keys: KeyService,
        revoked: Revocations,
        clock: Clock,
        issuer: str,
        verified: VerifiedTokens | None = None,
    ) -> None:
        self._keys = keys
        self._revoked = revoked
        self._clock = clock
        self._issuer = issuer
        # Process-wide when wired (web/runtime.py); unwired: this object's own.
        self._verified = verified if verified is not None else VerifiedTokens()

    async def decode_own(self, token: str) -> Token | None:
        """A JWT signed by one of our keys (signature only; the callers check the claims)."""
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
            return None
        keys = await self._keys.verification_keys()
        if keys is None:
            return None
        known = self._verified.get(token, keys)
        if known is not None:
            return known
        try:
            decoded = jwt.decode(token, keys, algorithms=_ALGS)
        except (JoseError, ValueError, TypeError):
            return None
        self._verified.put(token, keys, decoded)
        return decoded

    async def validate(self, token: str) -> dict[str, Any] | None:
        """Claims of an active access token issued here, or None (RFC 7662 "active")."""
        decoded = await self.decode_own(token)
        if decoded is None or decoded.header.get("typ") != "at+jwt":
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self._issuer:
            return None
        if not claims_active(claims, self._clock.now().timestamp(), self._revoked):
            return None
        return claims
