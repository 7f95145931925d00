"""The revocation set: what every node must refuse until the tokens it concerns expire.

ARCHITECTURE.md, "Tokens and revocation": revoking a session, user, client, consent or token
writes the database and publishes an event; each node keeps the set in memory for the lifetime
of the access tokens it concerns, so introspection (RFC 7662 section 2.2: "active" false for
revoked tokens) answers exactly and fast.

- ``jti`` and ``family`` entries cover the token, or every access token minted from the refresh
  token family (RFC 7009 section 2.1), whenever issued.
- ``sid``, ``user``, ``client``, ``user_client`` and ``api_key`` (the tokens exchanged for an
  API key, by their ``ost_key_id``; RFC 8693 grant) entries cover the tokens issued at or before
  the revocation (a re-enabled user's new tokens are valid again). Both instants are compared
  at the clock's resolution, microseconds: the revocation time keeps them through the database
  and pub/sub, the token carries them in ``ost_iat_us`` (features/oauth/tokens.py). A token
  without it is placed by its whole-second ``iat``, and so counts as issued before a revocation
  in the same second (revoked when in doubt); an equal instant counts as before, too.
- An entry lives as long as the tokens it covers can: its own token's ``exp`` for a ``jti``,
  else the horizon, the longest lifetime any token can have (config.TokenSlice.max_token_ttl:
  the global TTLs and the cap on clients' own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ostiary.features.clock import Clock
from ostiary.features.oauth.models import RevocationKind
from ostiary.features.oauth.ports import RevocationStore
from ostiary.features.oauth.tokens import (
    API_KEY_CLAIM,
    EPOCH,
    FAMILY_CLAIM,
    ISSUED_AT_US_CLAIM,
)

__all__ = ["RevocationBus", "RevocationService", "RevocationSet", "issued_at"]


UNSEEN_WAIT = timedelta(minutes=2)
UNSEEN_JUMP = 1_000
UNSEEN_LIMIT = 10_000


class RevocationBus(Protocol):
    """Fan-out of revocations to the other nodes (Redis pub/sub when configured)."""

    async def publish(
        self, kind: RevocationKind, value: str, revoked_at: datetime, expires_at: datetime
    ) -> None: ...


class RevocationSet:
    """In-memory, bounded (entries expire with the tokens they concern)."""

    def __init__(self, limit: int = 500_000) -> None:
        self._entries: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        self._limit = limit
        # The database poll's place (RevocationService.sync): the highest id loaded, and the
        # ids below it not loaded yet, with when they were first missed.
        self.last_id = 0
        self.unseen_ids: dict[int, datetime] = {}
        # Kinds that are not revocations but invalidations of an in-process cache (``rbac``):
        # handed to their observer as they arrive, by pub/sub or by the poll, and not kept.
        self.observers: dict[str, Callable[[str], None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, kind: str, value: str, revoked_at: datetime, expires_at: datetime) -> None:
        observer = self.observers.get(kind)
        if observer is not None:
            observer(value)
            return
        key = (kind, value)
        existing = self._entries.get(key)
        if existing is not None:
            revoked_at = max(revoked_at, existing[0])
            expires_at = max(expires_at, existing[1])
        elif len(self._entries) >= self._limit:
            self.prune(revoked_at)
        self._entries[key] = (revoked_at, expires_at)

    def holds(self, kind: str, value: str) -> bool:
        """An entry of this kind and value is kept (until it expires and is pruned)."""
        return (kind, value) in self._entries

    def prune(self, now: datetime) -> None:
        for key in [k for k, (_, exp) in self._entries.items() if exp <= now]:
            del self._entries[key]

    def _revoked_after(self, kind: str, value: Any, issued_at: datetime) -> bool:
        if not value:
            return False
        entry = self._entries.get((kind, str(value)))
        return entry is not None and issued_at <= entry[0]

    def session_ended(self, sid: str, user_id: str, started: datetime) -> bool:
        """A browser session revoked by id, or whose user was disabled after it started."""
        if not self._entries:
            return False
        return ("sid", sid) in self._entries or self._revoked_after("user", user_id, started)

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """True if any revocation covers a token with these (RFC 9068) claims."""
        if not self._entries:
            return False
        jti = claims.get("jti")
        if jti and ("jti", str(jti)) in self._entries:
            return True
        family = claims.get(FAMILY_CLAIM)
        if family and ("family", str(family)) in self._entries:
            return True
        issued = issued_at(claims)
        if issued is None:
            return True  # cannot place it in time: refuse
        sub, client_id = claims.get("sub"), claims.get("client_id")
        return (
            self._revoked_after("sid", claims.get("sid"), issued)
            or self._revoked_after("user", sub, issued)
            or self._revoked_after("client", client_id, issued)
            or self._revoked_after("user_client", f"{sub}|{client_id}", issued)
            or self._revoked_after("api_key", claims.get(API_KEY_CLAIM), issued)
        )


def issued_at(claims: Mapping[str, Any]) -> datetime | None:
    """When the token was issued: to the microsecond if it says so, else to the second."""
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        return None
    precise = claims.get(ISSUED_AT_US_CLAIM)
    # Used only when it agrees with iat (both are signed by us; anything else is not ours).
    if type(precise) is int and precise // 1_000_000 == iat:
        return EPOCH + timedelta(microseconds=precise)
    return datetime.fromtimestamp(int(iat), UTC)


class RevocationService:
    def __init__(
        self,
        store: RevocationStore,
        revoked: RevocationSet,
        clock: Clock,
        *,
        horizon: timedelta,
        bus: RevocationBus | None = None,
    ) -> None:
        self._store = store
        self._set = revoked
        self._clock = clock
        self._horizon = horizon
        self._bus = bus

    async def revoke(
        self, kind: RevocationKind, value: str, *, expires_at: datetime | None = None
    ) -> None:
        """Record, apply locally at once (fail closed), and fan out to other nodes.

        ``expires_at``: when every token the entry covers has expired, if known (a ``jti``'s
        ``exp``); by default the horizon from now.
        """
        now = self._clock.now()
        expires = now + self._horizon if expires_at is None else expires_at
        await self._store.add(kind, value, now, expires)
        self._set.add(kind, value, now, expires)
        if self._bus is not None:
            await self._bus.publish(kind, value, now, expires)

    async def sync(self) -> int:
        """Load revocations written by other processes (the CLI, other replicas).

        PostgreSQL hands out ids at insert time, and transactions commit in any order: an id
        skipped on the way up may still commit (or was rolled back). Skipped ids are asked for
        again on every poll for ``UNSEEN_WAIT``, longer than any request's transaction.
        """
        now = self._clock.now()
        revoked = self._set
        unseen = revoked.unseen_ids
        for row_id in [i for i, missed in unseen.items() if now - missed > UNSEEN_WAIT]:
            del unseen[row_id]
        rows = await self._store.since(revoked.last_id, now, tuple(unseen))
        for row_id, kind, value, revoked_at, expires_at in rows:
            revoked.add(kind, value, revoked_at, expires_at)
            if unseen.pop(row_id, None) is not None or row_id <= revoked.last_id:
                continue
            # Bounded: the ids just below a jump are the ones a transaction may still hold
            # (on the first load, most gaps are long-expired rows).
            for skipped in range(max(revoked.last_id + 1, row_id - UNSEEN_JUMP), row_id):
                if len(unseen) < UNSEEN_LIMIT:
                    unseen[skipped] = now
            revoked.last_id = row_id
        return len(rows)

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        return self._set.is_revoked(claims)
