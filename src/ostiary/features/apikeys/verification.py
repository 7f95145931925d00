"""Verification of presented API keys (issue 12, section 3): the hot path of the feature.

Split out of :class:`~ostiary.features.apikeys.service.ApiKeyService` (which delegates to it)
so that a verification builds only what it uses: the key rows, the owner's effective
permissions (RBAC, cached per node) and this node's caches, not the whole service with its
organizations, RBAC service, audit trail and service-account store (a unit that built
``ApiKeyService`` cost 9.0 µs against 2.5 µs for the bare unit, on a quiet run of a
micro-benchmark: about 5 % of a verification).

- Verification reads the key's row (with its owner's standing) by its id, from the node's
  :class:`KeyCache` when it holds it (features/apikeys/cache.py: only rows that can verify;
  every change that can stop a key or change its secret invalidates what it touches on every
  node through ``KeyChanges``; a secret matching neither cached hash is checked against a
  fresh read). Every invalid key (malformed, unknown id, wrong secret, expired, revoked, owner
  gone) gets the same answer, and an unknown id costs the same HMAC, comparisons and database
  read as a known one that is not cached.
- At each use the key may do the intersection of its recorded permissions with the owner's
  *current* effective permissions (protocol/api_keys.py ``narrow``).
- A caller that presents the same key request after request (a gateway on the verify route:
  :meth:`KeyVerifier.authenticate_caller`) is answered from the node's ``KnownCallers``
  (features/apikeys/callers.py) while the key row it was built from is current in the key
  cache, its owner's permission stamp is unchanged and the key has not expired; its IP
  allowlist and ``last_used_at`` are handled at every request as for any other verification.
- ``last_used_at`` is written at most once per :data:`TOUCH_INTERVAL` per key: a bounded map
  on each node says when it last wrote (checked and set before any ``await``, so parallel
  verifications of one key write once), and the ``UPDATE`` itself only moves an older value
  (so nodes together write about once per interval too).
"""

from __future__ import annotations

import functools
import hmac
from datetime import datetime, timedelta

from ostiary.features.apikeys.cache import KeyCache
from ostiary.features.apikeys.callers import KnownCaller, KnownCallers
from ostiary.features.apikeys.models import ApiKey, ApiKeyPrincipal, KeyInUse, Verification
from ostiary.features.apikeys.ports import KeyRows, OwnerPermissions
from ostiary.features.clock import Clock
from ostiary.protocol.api_keys import narrow, parse_api_key
from ostiary.protocol.cidr import address_allowed, parse_cidr
from ostiary.protocol.opaque_secrets import secret_digest

__all__ = ["TOUCH_INTERVAL", "KeyVerifier", "UsageMarks"]

TOUCH_INTERVAL = timedelta(minutes=1)
_INVALID = Verification(None)  # frozen: one for every invalid key
# A valid key's outcome is a function of its row and its owner's effective permissions alone:
# built once for each pair, compared by identity (the node's caches hand out the same objects
# while they hold, and an entry keeps them alive, so an identity is never reused), so that a
# verification answered from the caches builds no principal (a frozen dataclass of nine
# fields: about 1 µs). Module-wide, as ``_address_in``: its values depend on nothing else.
# Bounded: the oldest key goes first.
_MAX_OUTCOMES = 10_000
_outcomes: dict[str, tuple[KeyInUse, frozenset[str], Verification]] = {}
# Compared against when the key id is unknown, so that an unknown id costs what a known one
# does (an HMAC and two constant-time comparisons).
_DUMMY_DIGEST = "0" * 64


class UsageMarks:
    """When this node last wrote each key's ``last_used_at``; bounded (the oldest mark goes
    first, which at worst costs one extra write)."""

    __slots__ = ("_marks", "_max")

    def __init__(self, max_entries: int = 100_000) -> None:
        self._marks: dict[str, datetime] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._marks)

    def due(self, key_id: str, now: datetime) -> bool:
        """Whether to write now; if so, marks it (synchronously: concurrent callers on this
        node see the mark at once)."""
        marks = self._marks
        last = marks.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL:
            return False
        if last is not None:
            del marks[key_id]
        elif len(marks) >= self._max:
            del marks[next(iter(marks))]
        marks[key_id] = now
        return True


class KeyVerifier:
    __slots__ = ("_cache", "_callers", "_clock", "_keys", "_pepper", "_permissions", "_usage")

    def __init__(
        self,
        keys: KeyRows,
        permissions: OwnerPermissions,
        clock: Clock,
        *,
        pepper: bytes,
        usage: UsageMarks,
        cache: KeyCache | None = None,
        callers: KnownCallers | None = None,
    ) -> None:
        self._keys = keys
        self._permissions = permissions
        self._clock = clock
        self._pepper = pepper
        self._usage = usage
        self._cache = cache
        self._callers = callers  # callers' own keys (authenticate_caller); needs ``cache``

    async def _in_use(self, key_id: str) -> KeyInUse | None:
        """The key's row with its owner's standing, read from the database (and cached)."""
        cache = self._cache
        if cache is None:
            return await self._keys.find_in_use(key_id)
        read_at = cache.begin()
        found = await self._keys.find_in_use(key_id)
        if found is not None:
            cache.put(found, read_at)
        return found

    async def _matching(self, raw: str, digest: bytes, now: datetime) -> KeyInUse | None:
        """The presented key's row with its owner's standing, if the secret matches it (see the
        module docstring for what is equal); None otherwise."""
        cache = self._cache
        key_id = parse_api_key(raw)
        found = cache.get(key_id) if cache is not None and key_id else None
        valid = found is not None and self._secret_matches(found.key, digest, now)
        if not valid:
            # Not cached, or the secret matches neither cached hash (a rotation committed on
            # another node whose invalidation is on its way): the database decides.
            found = await self._in_use(key_id) if key_id is not None else None
            valid = self._secret_matches(found.key if found else None, digest, now)
        return found if valid else None

    async def verify(
        self, raw: str, *, ip: str | None = None, model: str | None = None
    ) -> Verification:
        """Check a presented key. ``ip``/``model``: also check them against the key's
        allowlists (not checked when None). See the module docstring for what is equal."""
        now = self._clock.now()
        if not isinstance(raw, str):
            raw = ""  # malformed: costs what any other invalid key does
        found = await self._matching(raw, secret_digest(self._pepper, raw).encode(), now)
        if found is None:
            return _INVALID
        outcome = await self._valid(found, now)
        if outcome is None:
            return _INVALID
        key = found.key
        if ip is not None and key.allowed_ips and not self._ip_allowed(ip, key.allowed_ips):
            return Verification(outcome.principal, "ip_not_allowed")
        if model is not None and key.models and model not in key.models:
            return Verification(outcome.principal, "model_not_allowed")
        if self._usage.due(key.id, now):
            await self._keys.touch(key.id, now, now - TOUCH_INTERVAL)
        return outcome

    @staticmethod
    def _secret_matches(key: ApiKey | None, digest: bytes, now: datetime) -> bool:
        """The presented secret's digest is the key's current one, or its previous one within
        the rotation overlap. Both comparisons always run (constant time, no short-circuit),
        against a dummy when there is no key."""
        current = (key.secret_hash if key is not None else _DUMMY_DIGEST).encode()
        previous_hash = key.previous_hash if key is not None else None
        previous = (previous_hash or _DUMMY_DIGEST).encode()
        match_current = hmac.compare_digest(digest, current)
        match_previous = hmac.compare_digest(digest, previous)
        if key is None:
            return False
        return match_current or (
            match_previous
            and previous_hash is not None
            and key.previous_expires_at is not None
            and now < key.previous_expires_at
        )

    async def _principal(self, found: KeyInUse, now: datetime) -> ApiKeyPrincipal | None:
        """What a key in use stands for now; None when it is revoked, expired, or its owner
        may no longer use it."""
        outcome = await self._valid(found, now)
        return outcome.principal if outcome is not None else None

    async def _valid(self, found: KeyInUse, now: datetime) -> Verification | None:
        """The valid outcome for a key in use now (:meth:`_principal`), built once for each row
        and owner's permissions (see :data:`_outcomes`)."""
        key = found.key
        if key.revoked_at is not None or not found.owner_active:
            return None
        if key.expires_at is not None and key.expires_at <= now:
            return None
        held = await self._permissions.effective_permissions(
            key.organization_id, key.owner_type, key.owner_id, found.project_id
        )
        known = _outcomes.get(key.id)
        if known is not None and known[0] is found and known[1] is held:
            return known[2]
        outcome = Verification(
            ApiKeyPrincipal(
                key_id=key.id,
                organization_id=key.organization_id,
                owner_type=key.owner_type,
                owner_id=key.owner_id,
                project_id=found.project_id,
                permissions=narrow(key.permissions, held),
                models=key.models,
                allowed_ips=key.allowed_ips,
                expires_at=key.expires_at,
            )
        )
        if known is None and len(_outcomes) >= _MAX_OUTCOMES:
            del _outcomes[next(iter(_outcomes))]
        _outcomes[key.id] = (found, held, outcome)
        return outcome

    async def principal_of(self, org_id: str, key_id: str) -> ApiKeyPrincipal | None:
        """A live key of ``org_id`` named by its id (no secret: a policy decision about a key,
        asked by a caller of the organization), or None."""
        found = None
        if len(key_id) <= 64:
            found = self._cache.get(key_id) if self._cache is not None else None
            found = found or await self._in_use(key_id)
        if found is None or found.key.organization_id != org_id:
            return None
        return await self._principal(found, self._clock.now())

    async def authenticate_api_key(self, raw: str, ip: str | None) -> ApiKeyPrincipal | None:
        """For the management API and other callers that act for the key: the principal, or
        None for any invalid key and for a client address outside the key's IP allowlist
        (an unknown address, None, never passes an allowlist)."""
        outcome = await self.verify(raw, ip=ip if ip is not None else "")
        return outcome.principal if outcome.valid else None

    async def authenticate_caller(self, raw: str, ip: str | None) -> ApiKeyPrincipal | None:
        """:meth:`authenticate_api_key` for a caller that presents the same key request after
        request (a gateway on the verify route): the same answers, kept per node while what
        they rest on holds (features/apikeys/callers.py)."""
        callers, cache = self._callers, self._cache
        if callers is None or cache is None:
            return await self.authenticate_api_key(raw, ip)
        now = self._clock.now()
        digest = secret_digest(self._pepper, raw)
        known = callers.get(digest)
        if known is not None and not self._holds(known, cache, now):
            callers.discard(digest)
            known = None
        fresh = known is None
        if known is None:
            known = await self._verified_caller(raw, digest, cache, now)
            if known is None:
                return None
        key = known.found.key
        if key.allowed_ips and not self._ip_allowed(ip or "", key.allowed_ips):
            return None
        if fresh and known.stamp is not None:  # kept only once the address passed
            callers.put(digest, known)
        if self._usage.due(key.id, now):
            await self._keys.touch(key.id, now, now - TOUCH_INTERVAL)
        return known.principal

    async def _verified_caller(
        self, raw: str, digest: str, cache: KeyCache, now: datetime
    ) -> KnownCaller | None:
        """A full verification of a caller's key, with what its answer rests on
        (features/apikeys/callers.py); None for an invalid key. Its ``stamp`` is None when it
        cannot be kept (the unit changed permissions)."""
        read_at = cache.begin()  # before the row
        found = await self._matching(raw, digest.encode(), now)
        if found is None:
            return None
        key = found.key
        stamp = self._permissions.stamp(key.organization_id, key.owner_type, key.owner_id)
        principal = await self._principal(found, now)  # after the stamp
        if principal is None:
            return None
        until = key.expires_at
        if not hmac.compare_digest(digest, key.secret_hash):  # the replaced secret
            ends = key.previous_expires_at
            until = ends if until is None or (ends is not None and ends < until) else until
        return KnownCaller(principal, found, read_at, stamp, until)

    def _holds(self, known: KnownCaller, cache: KeyCache, now: datetime) -> bool:
        """What ``known`` rests on is unchanged and its key has not expired (see
        features/apikeys/callers.py)."""
        if known.until is not None and known.until <= now:
            return False
        seq = cache.begin()
        if known.read_at != seq:
            if not cache.holds(known.found, known.read_at):
                return False
            known.read_at = seq  # current now: the next use compares one number
        key = known.found.key
        return known.stamp == self._permissions.stamp(
            key.organization_id, key.owner_type, key.owner_id
        )

    @staticmethod
    def _ip_allowed(ip: str, ranges: tuple[str, ...]) -> bool:
        return _address_in(ip, ranges) if len(ip) <= 64 else False


@functools.lru_cache(maxsize=4096)
def _address_in(ip: str, ranges: tuple[str, ...]) -> bool:
    """Whether ``ip`` lies in a stored allowlist (validated when the key was made); remembered
    per node for the addresses seen most (bounded: the least recently used goes)."""
    return address_allowed(ip, [parse_cidr(text) for text in ranges])
