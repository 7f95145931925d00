"""Process-local caches of per-user state for the browser hot path (session by cookie, user,
account page lists), invalidated by per-user generation counters.

Every write that changes what a user's pages show (a session started, touched or ended; the
user disabled or changed; a consent granted or withdrawn) bumps that user's generation, and an
entry stored at an older generation is a miss. :meth:`Generations.clear` drops everything at
once (the web layer calls it when another process wrote to SQLite). Entries also age out after
``max_age`` seconds, which bounds how long another *node's* writes that carry no revocation
(a new session listed, a renamed user) stay unseen. Security decisions never rest on age: a
cached session is checked against the revocation set on every use (ARCHITECTURE.md, "Tokens and
revocation"), which every node keeps current through pub/sub and the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Generations", "UserScopedCache"]

T = TypeVar("T")
_Stamp = tuple[int, int]


class Generations:
    """Per-user change counters, plus an epoch that :meth:`clear` moves for everyone."""

    __slots__ = ("_epoch", "_gens", "_limit")

    def __init__(self, limit: int = 100_000) -> None:
        self._gens: dict[str, int] = {}
        self._epoch = 0
        self._limit = limit

    def of(self, user_id: str) -> _Stamp:
        return self._epoch, self._gens.get(user_id, 0)

    def bump(self, user_id: str) -> None:
        if len(self._gens) >= self._limit:
            self.clear()  # bounded: forgetting counters is safe once the epoch moves
        self._gens[user_id] = self._gens.get(user_id, 0) + 1

    def clear(self) -> None:
        self._epoch += 1
        self._gens.clear()


class UserScopedCache(Generic[T]):
    """A bounded map whose entries belong to a user and go stale with that user's generation."""

    __slots__ = ("_entries", "_gens", "_max_age", "_max_entries", "_monotonic")

    def __init__(
        self,
        generations: Generations,
        *,
        max_entries: int = 10_000,
        max_age: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gens = generations
        self._entries: dict[str, tuple[T, str, _Stamp, float]] = {}
        self._max_entries = max_entries
        self._max_age = max_age
        self._monotonic = monotonic

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, user_id, stamp, stored = entry
        if stamp != self._gens.of(user_id) or self._monotonic() - stored > self._max_age:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, user_id: str, value: T) -> None:
        entries = self._entries
        if key not in entries and len(entries) >= self._max_entries:
            del entries[next(iter(entries))]  # the oldest insertion goes first
        entries[key] = (value, user_id, self._gens.of(user_id), self._monotonic())

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)
