"""Minting access tokens (RFC 9068) and ID tokens (OpenID Connect Core 1.0 section 2).

- RFC 9068 section 2.1: header ``typ: at+jwt``; section 2.2: ``iss, exp, aud, sub, client_id,
  iat, jti`` required, ``scope`` (section 2.2.3), ``auth_time, acr, amr`` (section 2.2.1) when
  known; for client credentials ``sub`` is the client id (section 2.2).
- Two private claims (RFC 7519 section 4.3) serve our own revocation checks
  (features/oauth/revocation.py): ``ost_iat_us``, the issuance instant in integer microseconds
  since the epoch (``iat`` stays a whole-second integer, which relying parties' libraries
  expect, but a revocation at 12:00:00.4 must not cover a token issued at 12:00:00.7), and
  ``ost_family``, the refresh token family the token was minted from (revoking a refresh token
  revokes the access tokens of its family, RFC 7009 section 2.1).
- ``ost_claims`` (RFC 7519 section 4.3): the user's claims the ``claims`` request parameter
  asked for at the userinfo endpoint (OpenID Connect Core 1.0 section 5.5), by name only, so
  that userinfo releases them for this token and no other.
- OIDC Core section 2: ID token ``iss, sub, aud, exp, iat, auth_time, nonce, acr, amr, azp``;
  section 3.1.3.6 ``at_hash``; OIDC Front-Channel / Back-Channel Logout: ``sid``.
- Each token is signed with the key of the algorithm its client is registered for
  (``OAuthPolicy.id_alg`` / ``access_alg``): OpenID Connect Dynamic Client Registration 1.0
  section 2 ``id_token_signed_response_alg``; RFC 9068 section 2.1 for access tokens.
- No key can sign (a fresh database before the first key exists, a changed secret key): RFC
  6749 section 5.2 has no code for it, so the answer is 503 ``temporarily_unavailable`` (the
  code of section 4.1.2.1 for the same condition), never a 500.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ostiary.features.keys.service import KeyService, NoSigningKey
from ostiary.protocol.jose import Alg, JwsSigner
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.oidc import left_half_hash

__all__ = [
    "API_KEY_CLAIM",
    "CLAIMS_CLAIM",
    "EPOCH",
    "FAMILY_CLAIM",
    "ISSUED_AT_US_CLAIM",
    "AccessTokenRequest",
    "MintedToken",
    "TokenMinter",
    "microseconds_since_epoch",
]

ISSUED_AT_US_CLAIM = "ost_iat_us"
API_KEY_CLAIM = "ost_key_id"  # the API key an exchanged token came from (RFC 8693 grant)
FAMILY_CLAIM = "ost_family"
CLAIMS_CLAIM = "ost_claims"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def microseconds_since_epoch(instant: datetime) -> int:
    """Exact (integer arithmetic on the datetime's own fields; no float on the way)."""
    return (instant - EPOCH) // _MICROSECOND


@dataclass(slots=True)  # not frozen: see protocol/authzen.py, Entity
class AccessTokenRequest:
    client_id: str
    subject: str
    scope: str
    audience: list[str]
    ttl: timedelta
    alg: Alg = "ES256"
    sid: str | None = None
    auth_time: datetime | None = None
    acr: str | None = None
    amr: list[str] | None = None
    family_id: str | None = None
    userinfo_claims: tuple[str, ...] = ()
    # Claims of an org-scoped client (``org_id``, ``org_roles``, ``permissions``): added
    # where they name nothing the token already carries.
    extra_claims: Mapping[str, Any] | None = None


@dataclass(slots=True)  # not frozen: see protocol/authzen.py, Entity
class MintedToken:
    token: str
    jti: str
    expires_in: int
    claims: dict[str, Any]


class TokenMinter:
    def __init__(self, keys: KeyService, issuer: str) -> None:
        self._keys = keys
        self._issuer = issuer

    async def _signer(self, alg: Alg, typ: str, now: datetime) -> JwsSigner:
        try:
            return await self._keys.signer(alg, typ=typ, now=now)
        except NoSigningKey as exc:
            raise ProtocolError(
                "temporarily_unavailable",
                "The server cannot sign tokens yet; retry later.",
                hint=str(exc),
            ) from exc

    async def access_token(self, request: AccessTokenRequest, now: datetime) -> MintedToken:
        issued_us = microseconds_since_epoch(now)
        iat = issued_us // 1_000_000
        ttl = int(request.ttl.total_seconds())
        jti = secrets.token_urlsafe(16)
        aud: str | list[str] = (
            request.audience[0] if len(request.audience) == 1 else list(request.audience)
        )
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": request.subject,
            "aud": aud,
            "exp": iat + ttl,
            "iat": iat,
            "jti": jti,
            "client_id": request.client_id,
            ISSUED_AT_US_CLAIM: issued_us,
        }
        if request.family_id:
            claims[FAMILY_CLAIM] = request.family_id
        if request.scope:
            claims["scope"] = request.scope
        if request.sid:
            claims["sid"] = request.sid
        if request.auth_time is not None:
            claims["auth_time"] = int(request.auth_time.timestamp())
        if request.acr:
            claims["acr"] = request.acr
        if request.amr:
            claims["amr"] = list(request.amr)
        if request.userinfo_claims:
            claims[CLAIMS_CLAIM] = list(request.userinfo_claims)
        if request.extra_claims:
            claims.update({k: v for k, v in request.extra_claims.items() if k not in claims})
        signer = await self._signer(request.alg, "at+jwt", now)
        return MintedToken(signer.sign(claims), jti, ttl, claims)

    async def id_token(
        self,
        *,
        client_id: str,
        subject: str,
        now: datetime,
        ttl: timedelta,
        alg: Alg,
        auth_time: datetime,
        nonce: str | None,
        sid: str | None,
        acr: str | None,
        amr: list[str] | None,
        access_token: str | None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        iat = int(now.timestamp())
        signer = await self._signer(alg, "JWT", now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": client_id,
            "azp": client_id,
            "exp": iat + int(ttl.total_seconds()),
            "iat": iat,
            "auth_time": int(auth_time.timestamp()),
        }
        if nonce:
            claims["nonce"] = nonce
        if sid:
            claims["sid"] = sid
        if acr:
            claims["acr"] = acr
        if amr:
            claims["amr"] = list(amr)
        if access_token:
            claims["at_hash"] = left_half_hash(access_token, signer.alg)
        if extra_claims:
            claims.update({k: v for k, v in extra_claims.items() if k not in claims})
        return signer.sign(claims)
