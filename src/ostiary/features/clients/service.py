"""Client registration and authentication.

- RFC 6749 section 2.1 (client types), 2.3.1 (client password authentication), 3.1.2
  (redirection endpoint registration); RFC 9700 section 2.1 (exact redirect URI matching);
  RFC 8252 section 7.3 (loopback redirects for native apps).
- RFC 7591 section 2: ``jwks`` and ``jwks_uri`` are exclusive; a ``jwks_uri`` is a URL the
  server will fetch, so it must pass :func:`ostiary.protocol.destinations.check_fetch_url`
  (``https``, no userinfo or fragment, no internal address literal) under the deployment's
  destination policy (OWASP SSRF Prevention Cheat Sheet).
- OpenID Connect Dynamic Client Registration 1.0 section 2 ``id_token_signed_response_alg``
  and its access-token counterpart (RFC 9068 section 2.1): one of the deployment's enabled
  signing algorithms, or None for the deployment default.
- RFC 7662 section 4: a confidential client registered with ``introspection_audiences`` is a
  resource server for those audiences (see ``OAuthService.introspect`` for the rule).
- RFC 9700 section 2.1.1: ``pkce`` (``protocol/pkce.py``) defaults to ``nonce`` for
  confidential clients; public clients are always ``required``, and registering them with
  another mode is refused rather than silently changed.
- RFC 6749 section 2.3.1: a client registered with ``client_secret_basic`` or
  ``client_secret_post`` may authenticate with either (the registered one is its preference);
  ``private_key_jwt`` and ``none`` clients only with their own method.
- An update (:meth:`ClientService.update`) is validated by the same code as a registration and
  never changes the client id or secret. Other processes see it as they see a rotated secret or
  a deletion: SQLite nodes drop their client cache when the database changes (within the 1 s
  sync), others when the cached entry expires (``ClientCache`` ttl, 5 s).
- Secrets are 256-bit random values with the ``ost_cs_`` prefix, shown once and stored as
  HMAC-SHA256 under a server pepper (ARCHITECTURE.md, "machine secrets are high-entropy": a
  slow password hash would add nothing but latency). Rotation keeps the previous secret valid
  for an overlap window so deployed clients can be updated without downtime.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ostiary.features.audit.service import AuditTrail
from ostiary.features.clients.models import (
    AUTH_METHODS,
    GRANT_TYPES,
    PKCE_MODES,
    SECRET_METHODS,
    AuthMethod,
    Client,
    ClientType,
    GrantType,
    PkceMode,
)
from ostiary.features.clients.ports import ClientStore
from ostiary.features.clock import Clock
from ostiary.protocol.destinations import DestinationPolicy, DestinationRefused, check_fetch_url
from ostiary.protocol.jose import SUPPORTED_ALGS, Alg
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.protocol.opaque_secrets import digest_matches, new_secret, secret_digest
from ostiary.protocol.redirect_uris import RedirectUriError, validate_redirect_uri

__all__ = [
    "DEFAULT_SCOPES",
    "ClientCache",
    "ClientChanges",
    "ClientRegistration",
    "ClientService",
    "InvalidClientMetadata",
]

_T = TypeVar("_T")
SECRET_PREFIX = "ost_cs_"  # noqa: S105 (a prefix, not a secret)
# OIDC Core 5.4 claim scopes included, so that a generic relying party gets what it asks for.
DEFAULT_SCOPES = ("openid", "profile", "email", "address", "phone", "offline_access")
_MIN_TOKEN_TTL = 30  # seconds, as the global settings
_MIN_REFRESH_TTL = 60
_SCOPE_CHARS = set(
    "!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~"
)


class InvalidClientMetadata(ValueError):
    """Registration data that cannot be accepted (RFC 7591 3.2.2 ``invalid_client_metadata``)."""


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    name: str
    redirect_uris: tuple[str, ...] = ()
    public: bool = False
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    resources: tuple[str, ...] = ()
    introspection_audiences: tuple[str, ...] = ()
    auth_method: str | None = None
    first_party: bool = False
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    access_token_ttl: int | None = None
    id_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    id_token_signed_response_alg: str | None = None
    access_token_signed_response_alg: str | None = None
    client_id: str | None = None
    pkce: str | None = None  # default: "required" for public clients, else "nonce"
    org_scoped: bool = False


@dataclass(frozen=True, slots=True)
class ClientChanges:
    """What :meth:`ClientService.update` changes; None keeps the current value, and a list
    given replaces the whole list. ``clear_ttls`` names TTLs to reset to the global default."""

    name: str | None = None
    redirect_uris: tuple[str, ...] | None = None
    post_logout_redirect_uris: tuple[str, ...] | None = None
    grant_types: tuple[str, ...] | None = None
    scopes: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None
    introspection_audiences: tuple[str, ...] | None = None
    auth_method: str | None = None
    pkce: str | None = None
    first_party: bool | None = None
    org_scoped: bool | None = None
    access_token_ttl: int | None = None
    id_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    # An algorithm name, or "default" for the deployment's (OSTIARY_*_SIGNING_ALG).
    id_token_alg: str | None = None
    access_token_alg: str | None = None
    clear_ttls: frozenset[str] = frozenset()


# What ClientService.update may change; everything else (id, secrets, keys, disabled, and any
# field not listed) is kept as stored.
_UPDATABLE = (
    "name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "scopes",
    "resources",
    "introspection_audiences",
    "token_endpoint_auth_method",
    "access_token_ttl",
    "id_token_ttl",
    "refresh_token_ttl",
    "first_party",
    "id_token_signed_response_alg",
    "access_token_signed_response_alg",
    "pkce",
    "org_scoped",
)


class ClientCache:
    """Bounded, short-TTL cache of client records for the token endpoint's hot path.

    Changes made in this process invalidate at once; a change made by another process (the
    CLI, another replica) is seen within ``ttl``.
    """

    def __init__(self, ttl: timedelta = timedelta(seconds=5), limit: int = 1024) -> None:
        self._ttl = ttl
        self._limit = limit
        self._entries: dict[str, tuple[datetime, Client | None]] = {}

    def get(self, client_id: str, now: datetime) -> tuple[bool, Client | None]:
        entry = self._entries.get(client_id)
        if entry is None or now - entry[0] > self._ttl:
            return False, None
        return True, entry[1]

    def put(self, client_id: str, client: Client | None, now: datetime) -> None:
        if len(self._entries) >= self._limit:
            self._entries.pop(next(iter(self._entries)))
        self._entries[client_id] = (now, client)

    def clear(self) -> None:
        self._entries.clear()

    def invalidate(self, client_id: str) -> None:
        self._entries.pop(client_id, None)


def _alg(change: str | None, current: str | None) -> str | None:
    """An update's algorithm: unchanged (None), the deployment default ("default"), or one."""
    if change is None:
        return current
    return None if change == "default" else change


def _check_scope_token(scope: str) -> str:
    # RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    if not scope or any(ch not in _SCOPE_CHARS or ch in '"\\' for ch in scope):
        raise InvalidClientMetadata(f"invalid scope {scope!r}")
    return scope


def _check_audience(audience: str) -> str:
    # An audience a resource server answers to: an absolute URI without a fragment, like an
    # RFC 8707 resource indicator (section 2), or this issuer.
    parts = urlsplit(audience)
    if not parts.scheme or not parts.netloc or parts.fragment or len(audience) > 2000:
        raise InvalidClientMetadata(f"invalid introspection audience {audience!r}")
    return audience


class ClientService:
    def __init__(
        self,
        store: ClientStore,
        pepper: bytes,
        audit: AuditTrail,
        clock: Clock,
        cache: ClientCache | None = None,
        *,
        jwks_uri_policy: DestinationPolicy | None = None,
        token_ttl_max: timedelta = timedelta(days=1),
        signing_algs: tuple[Alg, ...] = SUPPORTED_ALGS,
    ) -> None:
        self._store = store
        self._pepper = pepper
        self._audit = audit
        self._clock = clock
        self._cache = cache or ClientCache()
        self._jwks_uri_policy = jwks_uri_policy or DestinationPolicy()
        # The bound on every token's lifetime that the revocation set and key retention rely
        # on (config.TokenSlice.max_token_ttl: OSTIARY_CLIENT_TOKEN_TTL_MAX_SECONDS, or a
        # global TTL if longer).
        self._token_ttl_max = int(token_ttl_max.total_seconds())
        self._signing_algs = signing_algs

    async def register(
        self, registration: ClientRegistration, *, actor: str | None = None
    ) -> tuple[Client, str | None]:
        """Create a client; returns it and its secret (None for public clients), shown once."""
        reg = registration
        client = self._validated(reg)
        method = client.token_endpoint_auth_method
        secret = None if reg.public or method == "private_key_jwt" else new_secret(SECRET_PREFIX)
        client.secret_hash = secret_digest(self._pepper, secret) if secret else None
        await self._store.add(client)
        await self._audit.record(
            "client.create",
            "success",
            actor=actor,
            target=client.client_id,
            details={
                "type": client.client_type,
                "auth_method": method,
                "pkce": client.pkce,
                "org_scoped": client.org_scoped,
            },
        )
        return client, secret

    async def update(
        self, client_id: str, changes: ClientChanges, *, actor: str | None = None
    ) -> Client:
        """Change a registration, validated as at :meth:`register`; id and secret stay."""
        current = await self._store.get(client_id)
        if current is None:
            raise LookupError(f"no client {client_id!r}")
        reg = ClientRegistration(
            name=_or(changes.name, current.name),
            redirect_uris=_or(changes.redirect_uris, tuple(current.redirect_uris)),
            public=current.is_public,
            post_logout_redirect_uris=_or(
                changes.post_logout_redirect_uris, tuple(current.post_logout_redirect_uris)
            ),
            grant_types=_or(changes.grant_types, tuple(current.grant_types)),
            scopes=_or(changes.scopes, tuple(current.scopes)),
            resources=_or(changes.resources, tuple(current.resources)),
            introspection_audiences=_or(
                changes.introspection_audiences, tuple(current.introspection_audiences)
            ),
            auth_method=_or(changes.auth_method, current.token_endpoint_auth_method),
            first_party=_or(changes.first_party, current.first_party),
            jwks=current.jwks,
            jwks_uri=current.jwks_uri,
            access_token_ttl=_ttl(changes, "access_token_ttl", current.access_token_ttl),
            id_token_ttl=_ttl(changes, "id_token_ttl", current.id_token_ttl),
            refresh_token_ttl=_ttl(changes, "refresh_token_ttl", current.refresh_token_ttl),
            client_id=current.client_id,
            pkce=_or(changes.pkce, current.pkce),
            org_scoped=_or(changes.org_scoped, current.org_scoped),
            id_token_signed_response_alg=_alg(
                changes.id_token_alg, current.id_token_signed_response_alg
            ),
            access_token_signed_response_alg=_alg(
                changes.access_token_alg, current.access_token_signed_response_alg
            ),
        )
        checked = self._validated(reg)
        method = checked.token_endpoint_auth_method
        if method in SECRET_METHODS and current.secret_hash is None:
            raise InvalidClientMetadata(
                f"this client has no secret, so it cannot use {method}; register a new client"
            )
        updated = replace(
            current,
            **{name: getattr(checked, name) for name in _UPDATABLE},
            updated_at=checked.updated_at,
            # A client that no longer uses a secret keeps none that could be tried.
            secret_hash=current.secret_hash if method in SECRET_METHODS else None,
            previous_secret_hash=(
                current.previous_secret_hash if method in SECRET_METHODS else None
            ),
            previous_secret_expires_at=(
                current.previous_secret_expires_at if method in SECRET_METHODS else None
            ),
        )
        changed = sorted(
            name
            for name in Client.__slots__
            if name != "updated_at" and getattr(updated, name) != getattr(current, name)
        )
        await self._store.update(updated)
        self._cache.invalidate(client_id)
        await self._audit.record(
            "client.update", "success", actor=actor, target=client_id, details={"changed": changed}
        )
        return updated

    def _validated(self, reg: ClientRegistration) -> Client:
        """The client ``reg`` describes, every rule checked; no secret yet."""
        name = reg.name.strip()
        if not name or len(name) > 200:
            raise InvalidClientMetadata("a client needs a name of at most 200 characters")
        client_type: ClientType = "public" if reg.public else "confidential"
        method_name = reg.auth_method or ("none" if reg.public else "client_secret_basic")
        method = next((m for m in AUTH_METHODS if m == method_name), None)
        if method is None:
            raise InvalidClientMetadata(f"unknown token_endpoint_auth_method {method_name!r}")
        if reg.public and method != "none":
            raise InvalidClientMetadata("public clients authenticate with method 'none'")
        if not reg.public and method == "none":
            raise InvalidClientMetadata("confidential clients cannot use method 'none'")
        if method == "private_key_jwt" and not (reg.jwks or reg.jwks_uri):
            raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")
        if reg.jwks is not None and reg.jwks_uri is not None:
            raise InvalidClientMetadata("jwks and jwks_uri must not both be given")
        if reg.jwks_uri is not None:
            try:
                check_fetch_url(reg.jwks_uri, self._jwks_uri_policy)
            except DestinationRefused as exc:
                raise InvalidClientMetadata(f"jwks_uri refused: {exc.reason}") from exc
        grant_types: list[GrantType] = []
        for grant_name in dict.fromkeys(reg.grant_types):
            grant = next((g for g in GRANT_TYPES if g == grant_name), None)
            if grant is None:
                raise InvalidClientMetadata(f"unsupported grant type {grant_name!r}")
            grant_types.append(grant)
        if reg.public and "client_credentials" in grant_types:
            raise InvalidClientMetadata("public clients cannot use client_credentials")
        if "authorization_code" in grant_types and not reg.redirect_uris:
            raise InvalidClientMetadata("authorization_code clients need a redirect URI")
        try:
            redirect_uris = [
                validate_redirect_uri(u, public_native=reg.public) for u in reg.redirect_uris
            ]
            logout_uris = [
                validate_redirect_uri(u, public_native=reg.public)
                for u in reg.post_logout_redirect_uris
            ]
        except RedirectUriError as exc:
            raise InvalidClientMetadata(str(exc)) from exc
        scopes = [_check_scope_token(s) for s in dict.fromkeys(reg.scopes)]
        for label, ttl in (("access", reg.access_token_ttl), ("ID", reg.id_token_ttl)):
            if ttl is not None and not _MIN_TOKEN_TTL <= ttl <= self._token_ttl_max:
                raise InvalidClientMetadata(
                    f"the {label} token lifetime must be {_MIN_TOKEN_TTL} to "
                    f"{self._token_ttl_max} seconds (OSTIARY_CLIENT_TOKEN_TTL_MAX_SECONDS)"
                )
        if reg.refresh_token_ttl is not None and reg.refresh_token_ttl < _MIN_REFRESH_TTL:
            raise InvalidClientMetadata(
                f"the refresh token lifetime must be at least {_MIN_REFRESH_TTL} seconds"
            )
        id_alg = self._signing_alg("ID", reg.id_token_signed_response_alg)
        access_alg = self._signing_alg("access", reg.access_token_signed_response_alg)
        audiences = [_check_audience(a) for a in dict.fromkeys(reg.introspection_audiences)]
        if audiences and reg.public:
            raise InvalidClientMetadata("public clients cannot introspect tokens")
        pkce_name = reg.pkce or ("required" if reg.public else "nonce")
        pkce: PkceMode | None = next((m for m in PKCE_MODES if m == pkce_name), None)
        if pkce is None:
            raise InvalidClientMetadata(
                f"unknown PKCE mode {pkce_name!r} (required|nonce|optional)"
            )
        if reg.public and pkce != "required":
            raise InvalidClientMetadata("public clients always need PKCE (pkce 'required')")
        now = self._clock.now()
        return Client(
            client_id=reg.client_id or "ost_" + secrets.token_urlsafe(12),
            name=name,
            client_type=client_type,
            token_endpoint_auth_method=method,
            created_at=now,
            updated_at=now,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=logout_uris,
            grant_types=grant_types,
            scopes=scopes,
            resources=list(dict.fromkeys(reg.resources)),
            introspection_audiences=audiences,
            jwks=reg.jwks,
            jwks_uri=reg.jwks_uri,
            access_token_ttl=reg.access_token_ttl,
            id_token_ttl=reg.id_token_ttl,
            refresh_token_ttl=reg.refresh_token_ttl,
            id_token_signed_response_alg=id_alg,
            access_token_signed_response_alg=access_alg,
            first_party=reg.first_party,
            pkce=pkce,
            org_scoped=reg.org_scoped,
        )

    def _signing_alg(self, label: str, name: str | None) -> Alg | None:
        if name is None:
            return None
        alg = next((a for a in self._signing_algs if a == name), None)
        if alg is None:
            raise InvalidClientMetadata(
                f"the {label} token algorithm must be one of {', '.join(self._signing_algs)} "
                "(OSTIARY_SIGNING_ALGS)"
            )
        return alg

    async def get(self, client_id: str) -> Client | None:
        """Cached lookup (hot path)."""
        if not client_id or len(client_id) > 128:
            return None
        now = self._clock.now()
        hit, cached = self._cache.get(client_id, now)
        if hit:
            return cached
        client = await self._store.get(client_id)
        self._cache.put(client_id, client, now)
        return client

    async def list(self) -> list[Client]:
        return await self._store.list()

    async def rotate_secret(
        self, client_id: str, *, overlap: timedelta, actor: str | None = None
    ) -> tuple[Client, str]:
        client = await self._store.get(client_id)
        if client is None:
            raise LookupError(f"no client {client_id!r}")
        if client.is_public or client.token_endpoint_auth_method == "private_key_jwt":  # noqa: S105
            raise InvalidClientMetadata("this client does not use a secret")
        now = self._clock.now()
        secret = new_secret(SECRET_PREFIX)
        client.previous_secret_hash = client.secret_hash
        client.previous_secret_expires_at = now + overlap
        client.secret_hash = secret_digest(self._pepper, secret)
        client.updated_at = now
        await self._store.update(client)
        self._cache.invalidate(client_id)
        await self._audit.record(
            "client.rotate_secret",
            "success",
            actor=actor,
            target=client_id,
            details={"overlap_seconds": int(overlap.total_seconds())},
        )
        return client, secret

    async def delete(self, client_id: str, *, actor: str | None = None) -> bool:
        deleted = await self._store.delete(client_id)
        self._cache.invalidate(client_id)
        if deleted:
            await self._audit.record("client.delete", "success", actor=actor, target=client_id)
        return deleted

    async def set_disabled(
        self, client_id: str, disabled: bool, *, actor: str | None = None
    ) -> Client:
        client = await self._store.get(client_id)
        if client is None:
            raise LookupError(f"no client {client_id!r}")
        client.disabled = disabled
        client.updated_at = self._clock.now()
        await self._store.update(client)
        self._cache.invalidate(client_id)
        await self._audit.record(
            "client.disable" if disabled else "client.enable",
            "success",
            actor=actor,
            target=client_id,
        )
        return client

    def check_secret(self, client: Client, secret: str) -> bool:
        """Constant-time check against the current secret and, within overlap, the previous."""
        if client.secret_hash is None or not secret or len(secret) > 256:
            return False
        current = digest_matches(self._pepper, secret, client.secret_hash)
        previous = False
        overlap_ends = client.previous_secret_expires_at
        if client.previous_secret_hash and overlap_ends and self._clock.now() < overlap_ends:
            previous = digest_matches(self._pepper, secret, client.previous_secret_hash)
        return current or previous

    async def authenticate(
        self, client_id: str, *, method: AuthMethod, secret: str | None = None
    ) -> Client:
        """Authenticate a client at the token, introspection or revocation endpoint.

        RFC 6749 section 2.3 / 5.2: an unknown client, a wrong secret, or a method other than
        the registered one is ``invalid_client``; the two secret methods count as one (section
        2.3.1: the server supports both for a client that holds a secret). ``private_key_jwt``
        assertions are checked by the caller with :mod:`ostiary.features.clients.assertions`
        before this is reached.
        """
        client = await self.get(client_id)
        if client is None or client.disabled:
            raise ProtocolError(
                "invalid_client", "Client authentication failed.", hint="unknown or disabled client"
            )
        registered = client.token_endpoint_auth_method
        if method != registered and not (method in SECRET_METHODS and registered in SECRET_METHODS):
            raise ProtocolError(
                "invalid_client",
                "Client authentication failed.",
                hint=f"method {method} used, {client.token_endpoint_auth_method} registered",
            )
        if method in ("client_secret_basic", "client_secret_post") and not self.check_secret(
            client, secret or ""
        ):
            raise ProtocolError(
                "invalid_client", "Client authentication failed.", hint="wrong secret"
            )
        return client


def _or(value: _T | None, current: _T) -> _T:
    return current if value is None else value


def _ttl(changes: ClientChanges, name: str, current: int | None) -> int | None:
    if name in changes.clear_ttls:
        return None  # back to the global default
    value: int | None = getattr(changes, name)
    return current if value is None else value
