"""Signing key use cases: rotate, the ring at time t, JWKS, and the signer of the moment.

OpenID Connect Core 1.0 section 10.1.1 (publish before use), RFC 7517 section 5 (JWK Set).
The ring's windows are computed in ``ostiary.protocol.keyring``, one chain per algorithm:
each enabled algorithm (ES256, RS256, EdDSA; OpenID Connect Core 1.0 section 15.1 makes RS256
mandatory to implement) has a current key, and a client's tokens are signed with the key of
the algorithm it is registered for, so rotating one algorithm changes nothing for the others.
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
    SUPPORTED_ALGS,
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
        # The ring and keys by kid built from ``keys[1]`` (that very list): rebuilt when the
        # list is read again, not per token.
        self.ring: tuple[list[SigningKey], SigningKeyRing, dict[str, SigningKey]] | None = None

    def key_list(self) -> object:
        """The key list read last (compare with :meth:`current`), or None."""
        return self.keys[1] if self.keys is not None else None

    def current(self, key_list: object, now: datetime) -> bool:
        """``key_list`` (from :meth:`key_list`) is the list in use and younger than
        ``ring_ttl``: what was verified under it would be verified under the keys of now."""
        cached = self.keys
        return (
            key_list is not None
            and cached is not None
            and cached[1] is key_list
            and abs(now - cached[0]) < self.ring_ttl
        )

    def get(self, cache_key: str) -> JwsSigner | None:
        return self._signers.get(cache_key)

    def put_as(self, cache_key: str, signer: JwsSigner) -> None:
        if len(self._signers) >= self._limit:
            self._signers.pop(next(iter(self._signers)))
        self._signers[cache_key] = signer


class KeyService:
    """The deployment's signing keys: one chain per enabled algorithm (``algs``)."""

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
        algs: tuple[Alg, ...] = SUPPORTED_ALGS,
    ) -> None:
        self._store = store
        self._kek = kek
        self._clock = clock
        self._max_token_ttl = max_token_ttl
        self._publish_lead = publish_lead
        self._signers = signers or SignerCache()
        self._audit = audit
        self.algs = algs

    async def rotate(
        self, alg: Alg, *, lead: timedelta | None = None, actor: str | None = None
    ) -> SigningKey:
        """Add a key of ``alg``: published now, signing from ``now + lead`` (default: the
        configured lead). Keys of the other algorithms are not touched.

        An algorithm's first key signs at once (see :meth:`_first_activation`).
        """
        now = self._clock.now()
        existing = await self._store.all()
        ring = self._ring_of(existing)
        if ring.usable(alg):
            activates_at = now + (self._publish_lead if lead is None else lead)
        else:
            activates_at = _first_activation(existing, alg, now)
        key = self._new_key(alg, now, activates_at)
        await self._store.add(key)
        await self._added(key, actor)
        return key

    async def ensure_keys(self, *, actor: str | None = None) -> list[SigningKey]:
        """:meth:`ensure_key` for every enabled algorithm; the keys created."""
        created = []
        for alg in self.algs:
            key = await self.ensure_key(alg, actor=actor)
            if key is not None:
                created.append(key)
        return created

    async def ensure_key(self, alg: Alg, *, actor: str | None = None) -> SigningKey | None:
        """Create a first key of ``alg`` if it has no usable one; returns it, or None.

        Safe when several processes call it at once on one database (replicas starting
        together): the store inserts the key only if ``alg`` has no unretired key, under a
        database-level guard, so exactly one key results and the others return None.
        """
        existing = await self._store.all()
        if self._ring_of(existing).usable(alg):
            return None  # the common case on every start after the first: no key generated
        now = self._clock.now()
        key = self._new_key(alg, now, _first_activation(existing, alg, now))
        if not await self._store.add_first(key):
            self._signers.keys = None
            return None
        await self._added(key, actor)
        return key

    def _new_key(self, alg: Alg, now: datetime, activates_at: datetime) -> SigningKey:
        private = generate_private_key(alg)
        jwk = public_jwk(private, alg)
        kid = str(jwk["kid"])
        return SigningKey(
            kid=kid,
            alg=alg,
            public_jwk=jwk,
            sealed_private_key=seal(self._kek, private_key_der(private), kid.encode()),
            created_at=now,
            activates_at=activates_at,
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

    def _ring_of(self, keys: list[SigningKey]) -> SigningKeyRing:
        windows = (
            KeyWindow(k.kid, k.alg, k.created_at, k.activates_at, k.retired_at) for k in keys
        )
        return SigningKeyRing(windows, self._max_token_ttl)

    async def ring(self) -> tuple[SigningKeyRing, dict[str, SigningKey]]:
        keys = await self._keys()
        cached = self._signers.ring
        if cached is not None and cached[0] is keys:
            return cached[1], cached[2]
        ring, by_kid = self._ring_of(keys), {k.kid: k for k in keys}
        self._signers.ring = (keys, ring, by_kid)
        return ring, by_kid

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
        active = {w.kid for w in (ring.active_at(now, alg) for alg in SUPPORTED_ALGS) if w}
        published = {w.kid for w in ring.published_at(now)}
        rows = []
        for key in sorted(by_kid.values(), key=lambda k: k.activates_at, reverse=True):
            if key.kid in active:
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
        """None if every enabled algorithm has a key that can sign now, else why not (for
        readiness probes)."""
        for alg in self.algs:
            try:
                await self.signer(alg)
            except NoSigningKey as exc:
                return str(exc)
        return None

    async def signer(self, alg: Alg, typ: str = "JWT", now: datetime | None = None) -> JwsSigner:
        """The signer of the ``alg`` key active now; raises :class:`NoSigningKey` when none
        can sign (``alg`` not enabled, no key of it active, or its key does not open)."""
        if alg not in self.algs:
            raise NoSigningKey(f"{alg} is not an enabled signing algorithm (OSTIARY_SIGNING_ALGS)")
        ring, by_kid = await self.ring()
        window = ring.active_at(now or self._clock.now(), alg)
        if window is None:
            raise NoSigningKey(
                f"no active {alg} signing key; run `ostiary keys rotate --alg {alg}`"
            )
        cache_key = f"{window.kid}|{typ}"
        cached = self._signers.get(cache_key)
        if cached is not None:
            return cached
        stored = by_kid[window.kid]
        try:
            der = open_sealed(self._kek, stored.sealed_private_key, stored.kid.encode())
        except SealError as exc:
            raise NoSigningKey(
                f"the active {alg} signing key {stored.kid} does not open under this secret key"
            ) from exc
        signer = JwsSigner(stored.kid, stored.alg, load_private_key(der), typ=typ)
        self._signers.put_as(cache_key, signer)
        return signer


def _first_activation(existing: list[SigningKey], alg: Alg, now: datetime) -> datetime:
    """When a first (or first usable) key of ``alg`` starts to sign.

    At once: no token of ``alg`` has been signed yet (or its last key was retired), so no
    verifier can hold a JWKS that lacks the key it will be verified with. In a database that
    holds keys of other algorithms, "at once" is dated a microsecond before the activation of
    the latest activated key: the new key already signs here (its own chain only follows the
    retired keys of ``alg``), and a replica of the previous release, which still reads every
    key as one chain (migration 0006), keeps signing with the key it signs with now instead of
    switching every client to the new algorithm during a rolling upgrade.
    """
    activated = [k.activates_at for k in existing if k.activates_at <= now]
    if not activated:
        return now
    before_latest = max(activated) - timedelta(microseconds=1)
    own = [k.activates_at for k in existing if k.alg == alg]
    after_own = max(own) + timedelta(microseconds=1) if own else before_latest
    return min(now, max(before_latest, after_own))
