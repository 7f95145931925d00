"""Offline verification of Ostiary access tokens (JWTs), with optional introspection.

The checks, in order (cheap, local checks first, so junk never causes a key fetch):

1. RFC 7515 section 7.1: the token is a JWS Compact Serialization; its protected header is a
   JSON object. A ``crit`` header is refused (section 4.1.11: we understand no extension), and so
   is ``b64`` (RFC 7797 section 7: unencoded payloads are not for JWTs).
2. RFC 8725 section 3.1 / 2.1: ``alg`` must be in the configured allowlist, checked before any
   key is looked up; ``none`` and the HMAC algorithms can never be allowed (a public key used as
   an HMAC secret is the classic algorithm-confusion attack).
3. RFC 8725 section 3.11 and RFC 9068 section 4: explicit typing, ``typ`` must be ``at+jwt``
   (``application/`` prefix optional, compared case-insensitively, RFC 7515 section 4.1.9), so
   an ID token or any other JWT from the same issuer is not accepted as an access token.
4. The key named by ``kid`` from the issuer's JWKS (see ``_jwks``), whose type, curve and own
   ``alg`` must fit the token's ``alg``; then the signature (RFC 7515 section 5.2, via joserfc).
5. RFC 7519 section 4.1 and RFC 9068 sections 2.2 / 4: ``iss`` identical to the issuer, ``aud``
   containing a configured audience, ``exp`` required and in the future, ``nbf`` and ``iat`` not
   in the future, each with the configured leeway (section 4.1.4 allows "some small leeway");
   ``sub``, ``client_id``, ``iat`` and ``jti`` present as RFC 9068 section 2.2 requires.
6. RFC 9068 section 2.2.3: the space-separated ``scope`` claim holds every required scope,
   otherwise ``insufficient_scope`` (RFC 6750 section 3.1, HTTP 403).
7. Optionally RFC 7662 introspection (see ``_introspection``): an active answer is required.
   A token that is not a JWS is checked by introspection alone: the answer must be active, name
   a ``Bearer`` ``token_type`` if any (an active *refresh* token is not an access token) and an
   ``aud`` of ours; ``iss``, ``exp``, ``nbf``, ``iat`` are checked when present.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx
from joserfc import jws
from joserfc.errors import (
    InvalidKeyCurveError,
    InvalidKeyTypeError,
    JoseError,
    KeyParameterError,
    UnsupportedAlgorithmError,
)

from ostiary.verify._errors import TokenError
from ostiary.verify._introspection import IntrospectionConfig, introspect
from ostiary.verify._jwks import ALG_KEY_TYPES, SigningKeyCache, key_fits_alg
from ostiary.verify._token import VerifiedToken

__all__ = ["DEFAULT_ALGORITHMS", "TokenVerifier"]

logger = logging.getLogger("ostiary.verify")

DEFAULT_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA")
_HTTP_TIMEOUT = httpx.Timeout(5.0)
_ALG_CONFUSION = (
    UnsupportedAlgorithmError,
    InvalidKeyTypeError,
    InvalidKeyCurveError,
    KeyParameterError,
)
# RFC 7519 section 2 NumericDate; we refuse values a datetime cannot hold (beyond year 9999).
_MAX_NUMERIC_DATE = 253_402_300_799


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _media_type(value: str) -> str:
    # RFC 7515 section 4.1.9: "application/" may be omitted; media types are case-insensitive.
    lowered = value.strip().lower()
    return lowered.removeprefix("application/")


def _scope_set(required_scopes: Iterable[str]) -> tuple[str, ...]:
    # A scope-token never contains a space (RFC 6749 section 3.3), so "a b" means two scopes,
    # whether given as one string or as an item of the iterable.
    if isinstance(required_scopes, str):
        required_scopes = (required_scopes,)
    return tuple(dict.fromkeys(s for item in required_scopes for s in item.split()))


class TokenVerifier:
    """Verifies access tokens issued by one Ostiary issuer, for one resource server.

    One instance per process (or per event loop): it holds the JWKS cache and, unless ``http``
    is given, its own ``httpx.AsyncClient`` (closed by :meth:`aclose` or ``async with``).
    ``clock`` returns the current time as an aware datetime; it drives the claim checks and
    the JWKS cache.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Sequence[str],
        *,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: timedelta = timedelta(seconds=30),
        jwks_ttl: timedelta = timedelta(minutes=5),
        min_refetch_interval: timedelta = timedelta(seconds=30),
        expected_typ: str | None = "at+jwt",
        http: httpx.AsyncClient | None = None,
        introspection: IntrospectionConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not issuer:
            raise ValueError("issuer must be a non-empty URL")
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audience must be a non-empty string or sequence of strings")
        allowed = tuple(dict.fromkeys(algorithms))
        refused = [alg for alg in allowed if alg not in ALG_KEY_TYPES]
        if refused or not allowed:
            raise ValueError(
                f"algorithms must be asymmetric JWS algorithms from {sorted(ALG_KEY_TYPES)}; "
                f"refused: {refused} ('none' and HS* are never allowed)"
            )
        if leeway < timedelta(0) or jwks_ttl <= timedelta(0) or min_refetch_interval < timedelta(0):
            raise ValueError("leeway and min_refetch_interval must be >= 0, jwks_ttl > 0")
        self.issuer = issuer
        self.audiences: tuple[str, ...] = audiences
        self.algorithms: tuple[str, ...] = allowed
        self.leeway = leeway
        self.expected_typ = expected_typ
        self.introspection = introspection
        self._expected_media_type = _media_type(expected_typ) if expected_typ else None
        self._clock = clock or _utcnow
        self._given_http = http
        self._own_http: httpx.AsyncClient | None = None
        self._registry = jws.JWSRegistry(algorithms=list(allowed), strict_check_header=False)
        self._keys = SigningKeyCache(
            issuer,
            self._http,
            ttl=jwks_ttl,
            min_refetch_interval=min_refetch_interval,
            clock=self._clock,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._given_http is not None:
            return self._given_http
        if self._own_http is None:
            self._own_http = httpx.AsyncClient(timeout=_HTTP_TIMEOUT, follow_redirects=False)
        return self._own_http

    async def aclose(self) -> None:
        """Close the HTTP client this verifier created (a client passed in is left open)."""
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def prefetch(self) -> None:
        """Discover the issuer and fetch its keys now, e.g. at start-up to fail fast.

        Raises :class:`TokenError` (``jwks_unavailable``) when that fails.
        """
        await self._keys.refresh()

    # -- verification ------------------------------------------------------------------------

    async def verify(
        self,
        token: str,
        required_scopes: Iterable[str] = (),
        *,
        introspect: bool = False,
    ) -> VerifiedToken:
        """Verify ``token`` and return what it says; :class:`TokenError` if it is refused.

        ``required_scopes`` must all be in the token's ``scope``. With ``introspect=True`` the
        authorization server must also confirm that the token is still active (RFC 7662), which
        catches revocation before expiry at the price of one request. A token that is not a JWS
        is verified by introspection alone when introspection is configured.
        """
        if introspect and self.introspection is None:
            raise ValueError("introspect=True needs an IntrospectionConfig on the verifier")
        scopes = _scope_set(required_scopes)
        try:
            if not isinstance(token, str) or not token:
                raise TokenError("malformed", "the token is empty")
            if token.count(".") != 2 and self.introspection is not None:
                return await self._verify_by_introspection(token, scopes)
            verified = await self._verify_jwt(token, scopes)
            if introspect:
                await self._introspect(token)
                return replace(verified, introspected=True)
            return verified
        except TokenError as exc:
            logger.debug("access token refused: %s (%s)", exc.reason, exc.description)
            raise

    async def _verify_jwt(self, token: str, required_scopes: tuple[str, ...]) -> VerifiedToken:
        obj = self._parse(token)
        header = obj.protected
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenError("alg_not_allowed", "the token's signature algorithm is not allowed")
        if "crit" in header or "b64" in header:
            raise TokenError("malformed", "the token uses a JWS extension that is not accepted")
        self._check_typ(header)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("malformed", "the token has no kid header")
        candidates = await self._keys.candidates(kid)
        key = next((k for k in candidates if key_fits_alg(k, alg)), None)
        if key is None:
            raise TokenError("alg_not_allowed", "the key named by kid is not for this algorithm")
        try:
            valid = jws.validate_compact(obj, key, registry=self._registry)
        except _ALG_CONFUSION as exc:
            raise TokenError("alg_not_allowed", "the key does not fit the algorithm") from exc
        except JoseError as exc:
            raise TokenError("malformed", "the token's JWS is malformed") from exc
        if not valid:
            raise TokenError("bad_signature", "the token's signature does not verify")
        try:
            claims = json.loads(obj.payload)
        except ValueError as exc:
            raise TokenError("malformed", "the token's payload is not JSON") from exc
        if not isinstance(claims, dict):
            raise TokenError("malformed", "the token's payload is not a JSON object")
        return self._check_claims(claims, dict(header), required_scopes, jwt=True)

    def _parse(self, token: str) -> jws.CompactSignature:
        if "" in token.split("."):
            # RFC 7515 appendix F detached content is not a JWT.
            raise TokenError("malformed", "the token is not a valid JWS")
        try:
            obj = jws.extract_compact(token.encode("ascii"), registry=self._registry)
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenError("malformed", "the token is not a valid JWS") from exc
        if not isinstance(obj.protected, dict):
            raise TokenError("malformed", "the token's header is not a JSON object")
        return obj

    def _check_typ(self, header: Mapping[str, Any]) -> None:
        if self._expected_media_type is None:
            return
        typ = header.get("typ")
        if not isinstance(typ, str) or _media_type(typ) != self._expected_media_type:
            raise TokenError("wrong_typ", f"the token's typ is not {self.expected_typ}")

    async def _introspect(self, token: str) -> dict[str, Any]:
        config = self.introspection
        assert config is not None
        endpoint = config.endpoint
        if endpoint is None:
            metadata = await self._keys.metadata()
            endpoint = metadata.introspection_endpoint if metadata else None
        if endpoint is None:
            raise TokenError(
                "introspection_unavailable", "the issuer's introspection endpoint is unknown"
            )
        return await introspect(self._http(), endpoint, config, token)

    async def _verify_by_introspection(
        self, token: str, required_scopes: tuple[str, ...]
    ) -> VerifiedToken:
        answer = await self._introspect(token)
        # An active refresh token (or any non-bearer token) is not an access token; an answer
        # without aud cannot show that the token is meant for this resource (RFC 7662 section 4).
        token_type = answer.get("token_type")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() != "bearer"
        ):
            raise TokenError("wrong_typ", "the token is not a bearer access token")
        if "aud" not in answer:
            raise TokenError("wrong_audience", "the token is not intended for this resource")
        verified = self._check_claims(answer, {}, required_scopes, jwt=False)
        return replace(verified, introspected=True)

    # -- claims ------------------------------------------------------------------------------

    def _check_claims(
        self,
        claims: dict[str, Any],
        header: dict[str, Any],
        required_scopes: tuple[str, ...],
        *,
        jwt: bool,
    ) -> VerifiedToken:
        """RFC 7519 section 4.1 / RFC 9068 section 4 for a JWT (``jwt``), RFC 7662 section 4
        for an introspection answer, where every member but ``active`` is optional and checked
        only when present."""
        if (jwt or "iss" in claims) and claims.get("iss") != self.issuer:
            raise TokenError("wrong_issuer", "the token was not issued by the expected issuer")
        if jwt or "aud" in claims:
            self._check_audience(claims.get("aud"))
        now = self._clock().timestamp()
        leeway = self.leeway.total_seconds()
        exp = _numeric_date(claims, "exp", required=jwt)
        if exp is not None and now >= exp + leeway:
            raise TokenError("expired", "the token has expired")
        nbf = _numeric_date(claims, "nbf", required=False)
        if nbf is not None and nbf > now + leeway:
            raise TokenError("not_yet_valid", "the token is not valid yet (nbf)")
        iat = _numeric_date(claims, "iat", required=jwt)
        if iat is not None and iat > now + leeway:
            raise TokenError("not_yet_valid", "the token was issued in the future (iat)")
        subject = _required_string(claims, "sub")
        client_id = _required_string(claims, "client_id")
        jti = _required_string(claims, "jti") if jwt else _optional_string(claims, "jti")
        sid = _optional_string(claims, "sid")
        scope = _optional_string(claims, "scope")
        granted = frozenset(scope.split()) if scope else frozenset()
        missing = [s for s in required_scopes if s not in granted]
        if missing:
            raise TokenError(
                "insufficient_scope",
                f"the token lacks the scope {' '.join(missing)}",
                required_scopes=required_scopes,
            )
        return VerifiedToken(
            claims=claims,
            subject=subject,
            client_id=client_id,
            scopes=granted,
            expires_at=datetime.fromtimestamp(exp, UTC) if exp is not None else None,
            jti=jti,
            sid=sid,
            header=header,
        )

    def _check_audience(self, aud: object) -> None:
        # RFC 7519 section 4.1.3: a single string or an array of strings.
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(v, str) and v in self.audiences for v in values):
            raise TokenError("wrong_audience", "the token is not intended for this resource")


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenError("malformed", f"the token has no {name} claim")
        return None
    # bool is an int in Python; NaN and Infinity are accepted by json.loads: refuse them all.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= _MAX_NUMERIC_DATE
    ):
        raise TokenError("malformed", f"the token's {name} claim is not a NumericDate")
    return float(value)


def _required_string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError("malformed", f"the token has no valid {name} claim")
    return value


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise TokenError("malformed", f"the token's {name} claim is not a string")
    return value
