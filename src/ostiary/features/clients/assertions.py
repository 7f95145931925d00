"""``private_key_jwt`` client authentication (RFC 7523 section 2.2 and 3; OpenID Connect Core
1.0 section 9).

The client signs a JWT with its own private key; we verify it with the client's registered
public keys (``jwks`` inline or fetched from ``jwks_uri``) and check, per RFC 7523 section 3:
``iss`` and ``sub`` are the client id, ``aud`` names this server, ``exp`` is present and not
past (and at most about an hour ahead, what common client libraries send), ``nbf``/``iat`` are
not in the future, and ``jti`` has not been seen before (replay refused until the assertion
expires). Only asymmetric algorithms are accepted (RFC 8725 section 3.1).

Audience (draft-ietf-oauth-rfc7523bis, after the OpenID Foundation's 2025 disclosure of the
audience-injection attack on JWT client authentication): ``aud`` must be our issuer identifier
as its only value. The token endpoint URL alone is still accepted, because older clients
(Authlib's ``PrivateKeyJWT`` among them) send it and it names no other server; an array that
carries any other value is refused, since a client that puts a foreign server's identifier
next to ours has made an assertion that server could replay here.

The header and claims are read with size and nesting limits before any library parses them
(protocol/jwt_parts.py, RFC 8725 section 3.12), and dates must be usable NumericDates, so a
malformed assertion is ``invalid_client``, never a server error.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from ostiary.features.clients.models import Client
from ostiary.features.clock import Clock
from ostiary.protocol.jwt_parts import decode_json_segment, numeric_date
from ostiary.protocol.oauth_errors import ProtocolError

__all__ = [
    "ASSERTION_ALGS",
    "ASSERTION_TYPE",
    "AssertionReplayStore",
    "ClientAssertionVerifier",
    "JwksFetcher",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Published as *_auth_signing_alg_values_supported (RFC 8414 section 2).
ASSERTION_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_ALGS = list(ASSERTION_ALGS)
# Authlib and other libraries default to one hour; longer assertions are refused.
_MAX_LIFETIME = timedelta(minutes=61)
_LEEWAY = timedelta(seconds=30)
_MAX_ASSERTION = 8192


class JwksFetcher(Protocol):
    async def fetch(self, uri: str, *, refresh: bool = False) -> dict[str, Any]:
        """The JWK Set at ``uri`` ({} if unavailable); ``refresh`` asks past the cache (rate-
        limited by the fetcher) because a key id was not in the cached set."""
        ...


class AssertionReplayStore(Protocol):
    async def remember(self, key: str, expires_at: datetime) -> bool:
        """Record ``key``; False if it was already recorded (a replay)."""
        ...


def _fail(hint: str) -> ProtocolError:
    return ProtocolError("invalid_client", "Client authentication failed.", hint=hint)


def _unverified_part(assertion: str, index: int) -> dict[str, Any]:
    """The JOSE header (0) or the claims (1), decoded with limits but not verified."""
    parts = assertion.split(".")
    if len(assertion) > _MAX_ASSERTION or len(parts) != 3:
        raise _fail("malformed client assertion")
    try:
        return decode_json_segment(parts[index], max_length=_MAX_ASSERTION)
    except ValueError:
        raise _fail("malformed client assertion") from None


class ClientAssertionVerifier:
    def __init__(
        self,
        *,
        audiences: tuple[str, ...],
        replay: AssertionReplayStore,
        clock: Clock,
        fetcher: JwksFetcher | None = None,
    ) -> None:
        self._audiences = audiences
        self._replay = replay
        self._clock = clock
        self._fetcher = fetcher

    @staticmethod
    def claimed_client_id(assertion: str) -> str:
        """The unverified ``sub``, read only to find whose keys verify the assertion."""
        sub = _unverified_part(assertion, 1).get("sub")
        return sub if isinstance(sub, str) else ""

    async def _keys(self, client: Client, *, refresh: bool = False) -> KeySet:
        data: dict[str, Any] | None = client.jwks
        if data is None and client.jwks_uri and self._fetcher is not None:
            data = await self._fetcher.fetch(client.jwks_uri, refresh=refresh)
        if not data or not isinstance(data.get("keys"), list):
            raise _fail("client has no usable jwks")
        try:
            return KeySet.import_key_set(cast(KeySetSerialization, data))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _fail("client jwks cannot be parsed") from exc

    async def verify(self, client: Client, assertion: str) -> None:
        # Both parts pass the limits before joserfc's own (unlimited) JSON parse sees them.
        header = _unverified_part(assertion, 0)
        _unverified_part(assertion, 1)
        keys = await self._keys(client)
        kid = header.get("kid")
        if (
            isinstance(kid, str)
            and client.jwks is None
            and all(key.kid != kid for key in keys.keys)
        ):
            keys = await self._keys(client, refresh=True)  # the client rotated its keys
        try:
            token = jwt.decode(assertion, keys, algorithms=_ALGS)
        except (JoseError, ValueError, TypeError) as exc:
            raise _fail(f"client assertion does not verify: {type(exc).__name__}") from exc
        claims = token.claims
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise _fail("iss and sub must be the client id")
        if not self._audience_is_ours(claims.get("aud")):
            raise _fail("aud must be this issuer as its only value")
        now = self._clock.now().timestamp()
        leeway = _LEEWAY.total_seconds()
        exp = numeric_date(claims.get("exp"))
        if exp is None:
            raise _fail("exp is required (a NumericDate)")
        if exp <= now - leeway or exp > now + _MAX_LIFETIME.total_seconds():
            raise _fail("assertion expired or lives too long")
        for name in ("nbf", "iat"):
            if name not in claims:
                continue
            value = numeric_date(claims[name])
            if value is None:
                raise _fail(f"{name} is not a NumericDate")
            if value > now + leeway:
                raise _fail(f"{name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise _fail("jti is required")
        key = hashlib.sha256(f"{client.client_id}|{jti}".encode()).hexdigest()
        expires = datetime.fromtimestamp(exp, UTC)  # within an hour of now: representable
        if not await self._replay.remember(key, expires + _LEEWAY):
            raise _fail("client assertion replayed (jti seen before)")

    def _audience_is_ours(self, aud: object) -> bool:
        """One value, and it is one of ours (draft-ietf-oauth-rfc7523bis section 4)."""
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]  # a one-element array is still a single audience (RFC 7519 4.1.3)
        return isinstance(aud, str) and aud in self._audiences
