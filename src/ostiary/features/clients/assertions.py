"""``private_key_jwt`` client authentication (RFC 7523 section 2.2 and 3; OpenID Connect Core
1.0 section 9).

The client signs a JWT with its own private key; we verify it with the client's registered
public keys (``jwks`` inline or fetched from ``jwks_uri``) and check, per RFC 7523 section 3:
``iss`` and ``sub`` are the client id, ``aud`` names our token endpoint or issuer, ``exp`` is
present and not past (and at most about an hour ahead, what common client libraries send),
``nbf``/``iat`` are not in the future, and ``jti`` has not been seen before (replay refused
until the assertion expires). Only asymmetric algorithms are accepted (RFC 8725 section 3.1).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from ostiary.features.clients.models import Client
from ostiary.features.clock import Clock
from ostiary.protocol.oauth_errors import ProtocolError

__all__ = ["ASSERTION_TYPE", "AssertionReplayStore", "ClientAssertionVerifier", "JwksFetcher"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
# Authlib and other libraries default to one hour; longer assertions are refused.
_MAX_LIFETIME = timedelta(minutes=61)
_LEEWAY = timedelta(seconds=30)


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
    """The JOSE header (0) or the claims (1), decoded but not verified."""
    try:
        part = assertion.split(".")[index]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        raise _fail("malformed client assertion") from None
    if not isinstance(data, dict):
        raise _fail("malformed client assertion")
    return data


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
        return str(_unverified_part(assertion, 1).get("sub", ""))

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
        if len(assertion) > 8192:
            raise _fail("client assertion too large")
        keys = await self._keys(client)
        kid = _unverified_part(assertion, 0).get("kid")
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
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if not any(a in self._audiences for a in audiences):
            raise _fail("aud does not name this server")
        now = self._clock.now()
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise _fail("exp is required")
        expires = datetime.fromtimestamp(exp, UTC)
        if expires <= now - _LEEWAY or expires > now + _MAX_LIFETIME:
            raise _fail("assertion expired or lives too long")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if (
                isinstance(value, int | float)
                and datetime.fromtimestamp(value, UTC) > now + _LEEWAY
            ):
                raise _fail(f"{name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise _fail("jti is required")
        key = hashlib.sha256(f"{client.client_id}|{jti}".encode()).hexdigest()
        if not await self._replay.remember(key, expires + _LEEWAY):
            raise _fail("client assertion replayed (jti seen before)")
