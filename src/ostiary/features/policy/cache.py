"""What decisions reuse, cached per organization on each node (issue 13, section 2).

Compiled policy programs (per organization), resolved subjects (their Cedar entities and RBAC
permissions, per organization and principal), catalog attributes (per organization and
model) and the entity sets Cedar parsed for a principal and a resource (valid under the
principal's stamp, which the catalog's changes move too). As in features/rbac/cache.py, an
entry is valid while the counters it was read under have not moved: the epoch (everything; a
deployment-wide change), one per organization, one per principal of an organization. The keys
that move them travel on the revocation fan-out (web/runtime.py): ``policy`` messages (a
policy version, a catalog entry: ``ORG|*``, or ``*`` for a deployment-wide change) and the
``rbac`` ones (``ORG|*``, ``ORG|TYPE|ID``), since role and group membership is part of a
subject's entities. The stamp is read before the data, so an invalidation arriving meanwhile
makes the result stale instead of being overwritten by it. Bounded: at ``max_entries`` per
kind the oldest entry goes; at ``max_counters`` the epoch moves and every counter and entry is
dropped (safe: only misses).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["DecisionCache", "Stamp"]

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
