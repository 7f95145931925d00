"""What decisions reuse, cached per organization on each node (issue 13, section 2).

Compiled policy programs (per organization), resolved subjects (their Cedar entities and RBAC
permissions, per organization and principal), catalog attributes (per organization and
model), the entity sets Cedar parsed for a principal and a resource, and Cedar's answers for
a principal, a resource and an action when no policy reads the context (both valid under the
principal's stamp, which the catalog's and the policies' changes move too). As in
features/rbac/cache.py, an entry is valid while the counters it was read under have not
moved: the epoch (everything; a deployment-wide change), one per organization, one per
principal of an organization. The keys
that move them travel on the revocation fan-out (web/runtime.py): ``policy`` messages (a
policy version, a catalog entry: ``ORG|*``, or ``*`` for a deployment-wide change) and the
``rbac`` ones (``ORG|*``, ``ORG|TYPE|ID``), since role and group membership is part of a
subject's entities. The stamp is read before the data, so an invalidation arriving meanwhile
makes the result stale instead of being overwritten by it. Bounded: at ``max_entries`` per
kind the oldest entry goes; at ``max_counters`` the epoch moves and every counter and entry is
dropped (safe: only misses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ostiary.features.cache import Generations
from ostiary.features.policy.cedar import Answer

__all__ = ["DecisionCache", "KnownUsers", "Stamp"]

Stamp = tuple[int, int, int]
WHOLE_ORG = "*"
_V = TypeVar("_V")


class _Entries(Generic[_V]):
    __slots__ = ("_data", "_max")

    def __init__(self, max_entries: int) -> None:
        self._data: dict[Any, tuple[_V, Stamp]] = {}
        self._max = max_entries

    def get(self, key: Any, stamp: Stamp) -> _V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] != stamp:
            del self._data[key]
            return None
        return entry[0]

    def put(self, key: Any, value: _V, stamp: Stamp) -> None:
        data = self._data
        if key not in data and len(data) >= self._max:
            del data[next(iter(data))]
        data[key] = (value, stamp)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class DecisionCache:
    def __init__(self, *, max_entries: int = 20_000, max_counters: int = 100_000) -> None:
        self.programs: _Entries[Any] = _Entries(max(1, max_entries // 10))
        self.subjects: _Entries[Any] = _Entries(max_entries)
        self.models: _Entries[Any] = _Entries(max_entries)
        # Cedar entity sets (a parsed handle) per organization, principal and resource.
        self.entity_sets: _Entries[Any] = _Entries(max_entries)
        # Cedar's answers per organization, principal, resource and action, for programs that
        # never read the context (features/policy/service.py ``_decide``).
        self.answers: _Entries[Answer] = _Entries(max_entries)
        self._counters: dict[str, int] = {}
        self._epoch = 0
        self._max_counters = max_counters

    def stamp(self, org_id: str, principal: str = "") -> Stamp:
        counters = self._counters
        return (
            self._epoch,
            counters.get(f"{org_id}|{WHOLE_ORG}", 0),
            counters.get(f"{org_id}|{principal}", 0) if principal else 0,
        )

    def invalidate(self, key: str) -> None:
        """``*``: everything; ``ORG|*``: one organization; ``ORG|TYPE|ID``: one principal."""
        if key == WHOLE_ORG:
            self.clear()
            return
        counters = self._counters
        if key not in counters and len(counters) >= self._max_counters:
            self.clear()
        counters[key] = counters.get(key, 0) + 1

    def clear(self) -> None:
        self._epoch += 1
        self._counters.clear()
        self.programs.clear()
        self.subjects.clear()
        self.models.clear()
        self.entity_sets.clear()
        self.answers.clear()


class KnownUsers:
    """Enabled users by id, as decisions name their subjects: (id, e-mail address).

    A disabled user must be refused at once on every node (issue 13; ARCHITECTURE.md "Tokens
    and revocation"). Disabling writes a ``user`` revocation (features/oauth/service.py
    ``end_user_grants``), which reaches every node's revocation set by pub/sub, possibly before
    the disabling transaction has committed, and by the poll after it. So the caller (web/
    runtime.py ``Unit.find_user``) neither answers from nor fills this cache while the set holds
    a ``user`` entry for that user (for the token horizon, minutes: far longer than any
    transaction), and an entry lives at most ``max_age`` seconds, less than that horizon, so an
    entry read before a disabling cannot outlive the revocation entry that hides it. The
    stamp (the user's generation on this node, features/cache.py, moved by this node's
    changes of the user and by SQLite's catch-up) is read before the fetch. A new e-mail address
    drops the entry on every node (the ``user_row`` fan-out, web/runtime.py ``Unit.user_changed``,
    which also rebuilds every decision subject).
    """

    def __init__(
        self,
        generations: Generations,
        *,
        max_age: float = 30.0,
        max_entries: int = 20_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gens = generations
        self._entries: dict[str, tuple[tuple[str, str], tuple[int, int], float]] = {}
        self._max_age = max_age
        self._max = max(1, max_entries)
        self._monotonic = monotonic

    def stamp(self, user_id: str) -> tuple[int, int]:
        return self._gens.of(user_id)

    def get(self, user_id: str) -> tuple[str, str] | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        value, stamp, stored = entry
        if stamp != self._gens.of(user_id) or self._monotonic() - stored > self._max_age:
            del self._entries[user_id]
            return None
        return value

    def put(self, user_id: str, value: tuple[str, str], stamp: tuple[int, int]) -> None:
        if stamp != self._gens.of(user_id):
            return
        entries = self._entries
        if user_id not in entries and len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[user_id] = (value, stamp, self._monotonic())

    def discard(self, user_id: str) -> None:
        self._entries.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._entries)
