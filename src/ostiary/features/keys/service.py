"""Signing key use cases: rotate, the ring at time t, JWKS, and the signer of the moment.

OpenID Connect Core 1.0 section 10.1.1 (publish before use), RFC 7517 section 5 (JWK Set).
The ring's windows are computed in ``ostiary.protocol.keyring``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from joserfc.jwk import KeySet, KeySetSerialization

from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.keys.models import SigningKey
from ostiary.features.keys.ports import SigningKeyStore
from ostiary.protocol.jose import (
    Alg,
    JwsSigner,
    generate_private_key,
    load_private_key,
    private_key_der,
    public_jwk,
)
from ostiary.protocol.keyring import KeyWindow, SigningKeyRing
from ostiary.protocol.sealing import SealError, open_sealed, seal

__all__ = ["KeyService", "NoSigningKey", "SignerCache"]


class NoSigningKey(LookupError):
    """No key can sign now: none is active yet, or the active one does not open under this
    deployment's key-encryption key (the secret key changed)."""


class SignerCache:
    """Process-wide, bounded cache of unsealed signers by kid (avoids AES + DER parse per token)
    and of the key list (avoids a query per token). Keys added by another process are seen
    within ``ring_ttl``, far less than the publish lead time, so no token is signed with a key
    a verifier cannot have seen."""

    def __init__(self, limit: int = 16, ring_ttl: timedelta = timedelta(seconds=5)) -> None:
        self._limit = limit
        self._signers: dict[str, JwsSigner] = {}
        self.ring_ttl = ring_ttl
        self.keys: tuple[datetime, list[SigningKey]] | None = None
        self.keyset: tuple[tuple[str, ...], KeySet] | None = None

    def get(self, cache_key: str) -> JwsSigner | None:
        return self._signers.get(cache_key)

    def put_as(self, cache_key: str, signer: JwsSigner) -> None:
        if len(self._signers) >= self._limit:
            self._signers.pop(next(iter(self._signers)))
        self._signers[cache_key] = signer


class KeyService:
    def __init__(
        self,
        store: SigningKeyStore,
        kek: bytes,
        clock: Clock,
        *,
        max_token_ttl: timedelta,
        publish_lead: timedelta,
        signers: SignerCache | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self._store = store
        self._kek = kek
        self._clock = clock
        self._max_token_ttl = max_token_ttl
        self._publish_lead = publish_lead
        self._signers = signers or SignerCache()
        self._audit = audit

    async def rotate(
        self, alg: Alg, *, lead: timedelta | None = None, actor: str | None = None
    ) -> SigningKey:
        """Add a key: published now, signing from ``now + lead`` (default: configured lead).

        The very first key activates at once: nothing has been signed, nobody caches JWKS yet.
        """
        now = self._clock.now()
        existing = await self._store.all()
        wait = timedelta(0) if not existing else (self._publish_lead if lead is None else lead)
        key = self._new_key(alg, now, now + wait)
        await self._store.add(key)
        await self._added(key, actor)
        return key

    async def ensure_key(self, alg: Alg, *, actor: str | None = None) -> SigningKey | None:
        """Create the first key if there is none; returns it, or None if keys exist.

        Safe when several processes call it at once on one database (replicas starting
        together): the store inserts the key only if none exists, under a database-level
        guard, so exactly one key results and the others return None.
        """
        if await self._store.all():
            return None  # the common case on every start after the first: no key generated
        key = self._new_key(alg, self._clock.now())
        if not await self._store.add_first(key):
            self._signers.keys = None
            return None
        await self._added(key, actor)
        return key

    def _new_key(self, alg: Alg, now: datetime, activates_at: datetime | None = None) -> SigningKey:
        private = generate_private_key(alg)
        jwk = public_jwk(private, alg)
        kid = str(jwk["kid"])
        return SigningKey(
            kid=kid,
            alg=alg,
            public_jwk=jwk,
            sealed_private_key=seal(self._kek, private_key_der(private), kid.encode()),
            created_at=now,
            activates_at=activates_at or now,
        )

    async def _added(self, key: SigningKey, actor: str | None) -> None:
        self._signers.keys = None
        if self._audit is not None:
            await self._audit.record(
                "key.rotate",
                "success",
                actor=actor,
                target=key.kid,
                details={"alg": key.alg, "activates_at": key.activates_at.isoformat()},
            )

    async def _keys(self) -> list[SigningKey]:
        now = self._clock.now()
        cached = self._signers.keys
        if cached is not None and abs(now - cached[0]) < self._signers.ring_ttl:
            return cached[1]
        keys = await self._store.all()
        self._signers.keys = (now, keys)
        return keys

    async def ring(self) -> tuple[SigningKeyRing, dict[str, SigningKey]]:
        keys = await self._keys()
        by_kid = {k.kid: k for k in keys}
        windows = (KeyWindow(k.kid, k.created_at, k.activates_at) for k in keys)
        return SigningKeyRing(windows, self._max_token_ttl), by_kid

    async def verification_keys(self) -> KeySet | None:
        """Public keys of every stored key, parsed once per key set (for our own tokens);
        None before the first key exists."""
        keys = await self._keys()
        if not keys:
            return None
        kids = tuple(k.kid for k in keys)
        cached = self._signers.keyset
        if cached is not None and cached[0] == kids:
            return cached[1]
        data = cast(KeySetSerialization, {"keys": [k.public_jwk for k in keys]})
        keyset = KeySet.import_key_set(data)
        self._signers.keyset = (kids, keyset)
        return keyset

    async def jwks(self) -> dict[str, Any]:
        """The JWK Set to publish now: public members only (RFC 7517 section 5)."""
        ring, by_kid = await self.ring()
        return {"keys": [by_kid[w.kid].public_jwk for w in ring.published_at(self._clock.now())]}

    async def describe(self) -> list[dict[str, Any]]:
        """Every key with its state now (for ``ostiary keys list``)."""
        now = self._clock.now()
        ring, by_kid = await self.ring()
        active = ring.active_at(now)
        published = {w.kid for w in ring.published_at(now)}
        rows = []
        for key in sorted(by_kid.values(), key=lambda k: k.activates_at, reverse=True):
            if active is not None and key.kid == active.kid:
                state = "active"
            elif key.activates_at > now:
                state = "next"
            elif key.kid in published:
                state = "retired"
            else:
                state = "expired"
            retires = ring.retired_at(key.kid)
            rows.append(
                {
                    "kid": key.kid,
                    "alg": key.alg,
                    "state": state,
                    "created_at": key.created_at.isoformat(),
                    "activates_at": key.activates_at.isoformat(),
                    "retires_at": retires.isoformat() if retires else None,
                    "published": key.kid in published,
                }
            )
        return rows

    async def can_sign(self) -> str | None:
        """None if a key can sign now, else why not (for readiness probes)."""
        try:
            await self.signer()
        except NoSigningKey as exc:
            return str(exc)
        return None

    async def signer(self, typ: str = "JWT", now: datetime | None = None) -> JwsSigner:
        """The signer of the key active now; raises :class:`NoSigningKey` when none can sign."""
        ring, by_kid = await self.ring()
        window = ring.active_at(now or self._clock.now())
        if window is None:
            raise NoSigningKey("no active signing key; run `ostiary keys rotate`")
        cache_key = f"{window.kid}|{typ}"
        cached = self._signers.get(cache_key)
        if cached is not None:
            return cached
        stored = by_kid[window.kid]
        try:
            der = open_sealed(self._kek, stored.sealed_private_key, stored.kid.encode())
        except SealError as exc:
            raise NoSigningKey(
                f"the active signing key {stored.kid} does not open under this secret key"
            ) from exc
        signer = JwsSigner(stored.kid, stored.alg, load_private_key(der), typ=typ)
        self._signers.put_as(cache_key, signer)
        return signer
