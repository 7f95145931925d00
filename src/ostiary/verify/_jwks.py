"""Authorization-server metadata and the cached JSON Web Key Set of its signing keys.

- OpenID Connect Discovery 1.0 section 4: metadata at ``{issuer}/.well-known/openid-configuration``
  (a terminating ``/`` of the issuer removed first); section 4.3: the ``issuer`` in the document
  MUST be identical to the issuer URL used to find it, or the document is not used.
- RFC 8414 section 3 / 3.1: the OAuth fallback, ``/.well-known/oauth-authorization-server``
  inserted between the host and the issuer's path; section 3.3: the same issuer identity check.
- Last resort (an Ostiary that does not serve discovery yet): ``{issuer}/.well-known/jwks.json``.
- RFC 7517 section 5: a JWK Set; section 4.2 / 4.3: ``use`` must be ``sig`` and ``key_ops`` (when
  present) must allow ``verify``; section 4.5: two keys may share a ``kid`` when their ``kty``
  differs, so a ``kid`` maps to candidate keys and the token's ``alg`` picks among them.
- RFC 8725 section 3.1 / 3.10: keys come only from the issuer's JWKS; a token's ``jku``, ``x5u``,
  ``jwk`` or ``x5c`` header is never used to find a key. Symmetric (``oct``) JWKs and JWKs that
  carry private members are ignored: a public key set never holds a secret.

Caching: the set is refetched after ``ttl``; a ``kid`` not in the set triggers a refetch, but
no fetch (of any kind) starts less than ``min_refetch_interval`` after the previous one ended, so
a flood of tokens with invented ``kid`` values costs the authorization server at most one request
per interval. Concurrent callers wait for the fetch in flight instead of starting their own. When a
refetch fails, the keys already held stay in use until a later refetch succeeds.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from joserfc.jwk import ECKey, OKPKey, RSAKey

from ostiary.verify._errors import TokenError
from ostiary.verify._http import FetchError, request_json

__all__ = [
    "ALG_KEY_TYPES",
    "ProviderMetadata",
    "PublicKey",
    "SigningKeyCache",
    "discover",
    "key_fits_alg",
    "parse_jwks",
]

logger = logging.getLogger("ostiary.verify")

PublicKey = ECKey | RSAKey | OKPKey

# RFC 7518 section 3.1 / RFC 8037 section 3.1 / RFC 8812 section 3.2 / RFC 9864 section 2:
# the key type (and curves) each asymmetric JWS algorithm is defined for. Nothing symmetric
# and no ``none`` appears here, so nothing else can ever be allowed.
ALG_KEY_TYPES: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "ES256K": ("EC", frozenset({"secp256k1"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
    "Ed448": ("OKP", frozenset({"Ed448"})),
}

_KEY_CLASSES: Mapping[str, type[PublicKey]] = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}
# RFC 7518 sections 6.2.2, 6.3.2, 6.4: members that only a private key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7518 section 3.3 / 3.5: RSA keys of 2048 bits or larger MUST be used.
_MIN_RSA_BITS = 2048
_WELL_KNOWN_OIDC = "/.well-known/openid-configuration"
_WELL_KNOWN_OAUTH = "/.well-known/oauth-authorization-server"
_WELL_KNOWN_JWKS = "/.well-known/jwks.json"


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the authorization server's metadata the verifier uses."""

    jwks_uri: str
    introspection_endpoint: str | None


def _metadata_urls(issuer: str) -> list[str]:
    trimmed = issuer.rstrip("/")
    parts = urlsplit(trimmed)
    oauth = urlunsplit((parts.scheme, parts.netloc, _WELL_KNOWN_OAUTH + parts.path, "", ""))
    return [trimmed + _WELL_KNOWN_OIDC, oauth]


async def discover(http: httpx.AsyncClient, issuer: str) -> ProviderMetadata:
    """Find the JWKS (and introspection) endpoint of ``issuer``.

    Tries OpenID Connect Discovery, then RFC 8414 metadata, then ``{issuer}/.well-known/jwks.json``.
    A metadata document naming another issuer stops the search (:class:`FetchError`): it is a
    misconfiguration or an impersonation, never a reason to look elsewhere.
    """
    for url in _metadata_urls(issuer):
        try:
            document = await request_json(http, "GET", url)
        except FetchError as exc:
            if exc.status_code is None:
                raise
            logger.debug("no authorization server metadata at %s: %s", url, exc)
            continue
        if document.get("issuer") != issuer:
            raise FetchError(
                f"metadata at {url} names issuer {document.get('issuer')!r}, expected {issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise FetchError(f"metadata at {url} has no jwks_uri")
        introspection = document.get("introspection_endpoint")
        return ProviderMetadata(
            jwks_uri=jwks_uri,
            introspection_endpoint=introspection if isinstance(introspection, str) else None,
        )
    return ProviderMetadata(
        jwks_uri=issuer.rstrip("/") + _WELL_KNOWN_JWKS, introspection_endpoint=None
    )


def _import_jwk(entry: object) -> tuple[str, PublicKey] | None:
    if not isinstance(entry, dict):
        return None
    kid, kty = entry.get("kid"), entry.get("kty")
    if not isinstance(kid, str) or not kid or not isinstance(kty, str):
        return None
    key_class = _KEY_CLASSES.get(kty)
    if key_class is None or _PRIVATE_MEMBERS & entry.keys():
        return None
    if entry.get("use", "sig") != "sig":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    if kty == "RSA" and _rsa_bits(entry.get("n")) < _MIN_RSA_BITS:
        logger.warning("ignoring RSA JWK %r shorter than %d bits", kid, _MIN_RSA_BITS)
        return None
    try:
        key = key_class.import_key(entry)
    except Exception as exc:  # anything a malformed JWK from the network can raise
        logger.warning("ignoring JWK %r that does not import: %s", kid, exc)
        return None
    return kid, key


def _rsa_bits(modulus: object) -> int:
    if not isinstance(modulus, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def parse_jwks(document: Mapping[str, Any]) -> dict[str, tuple[PublicKey, ...]]:
    """The usable public signature keys of a JWK Set, by ``kid`` (RFC 7517 section 5)."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise FetchError("JWK Set has no keys array")
    keys: dict[str, tuple[PublicKey, ...]] = {}
    for entry in entries:
        imported = _import_jwk(entry)
        if imported is not None:
            kid, key = imported
            keys[kid] = (*keys.get(kid, ()), key)
    return keys


def key_fits_alg(key: PublicKey, alg: str) -> bool:
    """Whether ``key`` may verify a signature made with ``alg`` (RFC 8725 section 3.1).

    The key type and curve must be the ones ``alg`` is defined for, and a key that names its own
    ``alg`` (RFC 7517 section 4.4) is used with that algorithm only.
    """
    expected = ALG_KEY_TYPES.get(alg)
    if expected is None:
        return False
    kty, curves = expected
    if key.key_type != kty:
        return False
    if curves is not None and key.get("crv") not in curves:
        return False
    own_alg = key.get("alg")
    return own_alg is None or own_alg == alg


class SigningKeyCache:
    """The issuer's signature keys, fetched over HTTP and cached (see the module docstring)."""

    def __init__(
        self,
        issuer: str,
        http: Callable[[], httpx.AsyncClient],
        *,
        ttl: timedelta,
        min_refetch_interval: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._issuer = issuer
        self._http = http
        self._ttl = ttl
        self._min_interval = min_refetch_interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str, tuple[PublicKey, ...]] | None = None
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None
        self._discovery_failed_at: datetime | None = None
        # Counts finished fetch attempts: a caller that waited on the lock sees it moved and
        # uses the result of the fetch it waited for instead of starting another one.
        self._generation = 0

    async def candidates(self, kid: str) -> Sequence[PublicKey]:
        """The keys published under ``kid``; refetches per the caching rules above."""
        now = self._clock()
        generation = self._generation
        if self._keys is None or self._elapsed(self._fetched_at, now, self._ttl):
            if self._elapsed(self._attempted_at, now, self._min_interval):
                await self._refresh(generation)
        elif kid not in self._keys and self._elapsed(self._attempted_at, now, self._min_interval):
            await self._refresh(generation)
        if self._keys is None:
            raise TokenError("jwks_unavailable", "the issuer's signing keys are unavailable")
        found = self._keys.get(kid)
        if not found:
            raise TokenError("unknown_kid", "no signing key of the issuer has this kid")
        return found

    async def metadata(self) -> ProviderMetadata | None:
        """The issuer's metadata, discovered (without fetching keys) if not known yet.

        ``None`` when discovery fails; a failed discovery is not retried within
        ``min_refetch_interval``.
        """
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            now = self._clock()
            if self._metadata is None and self._elapsed(
                self._discovery_failed_at, now, self._min_interval
            ):
                try:
                    self._metadata = await discover(self._http(), self._issuer)
                except FetchError as exc:
                    self._discovery_failed_at = self._clock()
                    logger.warning("discovering %s failed: %s", self._issuer, exc)
        return self._metadata

    async def refresh(self) -> None:
        """Fetch metadata and keys now (start-up warm-up); :class:`TokenError` if that fails."""
        await self._refresh(self._generation)
        if self._keys is None:
            raise TokenError("jwks_unavailable", "the issuer's signing keys are unavailable")

    @staticmethod
    def _elapsed(since: datetime | None, now: datetime, interval: timedelta) -> bool:
        if since is None:
            return True
        age = now - since
        # A clock that went backwards counts as elapsed, so a wall-clock step cannot freeze us.
        return age < timedelta(0) or age >= interval

    async def _refresh(self, observed_generation: int) -> None:
        async with self._lock:
            if self._generation != observed_generation:
                return
            try:
                if self._metadata is None:
                    self._metadata = await discover(self._http(), self._issuer)
                document = await request_json(self._http(), "GET", self._metadata.jwks_uri)
                keys = parse_jwks(document)
            except FetchError as exc:
                # Rediscover next time: the jwks_uri itself may have moved.
                self._metadata = None
                logger.warning("fetching the signing keys of %s failed: %s", self._issuer, exc)
            else:
                self._keys = keys
                self._fetched_at = self._clock()
            finally:
                self._attempted_at = self._clock()
                self._generation += 1
