"""Effective permissions cached per (organization, principal, project) on each node.

An entry is valid while the change counters it was computed under have not moved: one per
principal in an organization, one per organization, and an epoch for everything. A change
bumps exactly what it touches (features/rbac/service.py says what each change touches), on
every node, through the revocation fan-out (web/runtime.py: Redis pub/sub, and the database
poll of the ``revocations`` table as the fallback). The stamp is read *before* the permissions
are computed, so an invalidation that arrives while a computation runs makes its result stale
instead of being overwritten by it. Bounded: at ``max_entries`` the oldest entry goes; at
``max_counters`` every counter is dropped and the epoch moves (everything is stale, which is
safe).

Every invalidation also moves one node-wide ``version``; an entry records the version it was
last found current under, so that while nothing at all was invalidated since, a lookup
compares one number instead of building the stamp (a hit on a quiet node: the usual case).
"""

from __future__ import annotations

from ostiary.features.rbac.models import PrincipalType

__all__ = ["PermissionCache", "Stamp", "invalidation_key", "principal_key"]

Stamp = tuple[int, int, int]
_EntryKey = tuple[str, str, str, str]
WHOLE_ORG = "*"


def principal_key(org_id: str, principal_type: str, principal_id: str) -> str:
    return f"{org_id}|{principal_type}|{principal_id}"


def invalidation_key(org_id: str, principal: tuple[str, str] | None) -> str:
    """What travels on the fan-out: one principal of an organization, or all of them."""
    return f"{org_id}|{WHOLE_ORG}" if principal is None else principal_key(org_id, *principal)


class PermissionCache:
    __slots__ = ("_counters", "_entries", "_epoch", "_max_counters", "_max_entries", "_version")

    def __init__(self, *, max_entries: int = 50_000, max_counters: int = 100_000) -> None:
        # key -> (permissions, their stamp, the version they were last found current under)
        self._entries: dict[_EntryKey, tuple[frozenset[str], Stamp, int]] = {}
        self._counters: dict[str, int] = {}
        self._epoch = 0
        self._version = 0  # moved by every invalidation and clear
        self._max_entries = max_entries
        self._max_counters = max_counters

    def __len__(self) -> int:
        return len(self._entries)

    def stamp(self, org_id: str, principal_type: PrincipalType, principal_id: str) -> Stamp:
        counters = self._counters
        return (
            self._epoch,
            counters.get(f"{org_id}|{WHOLE_ORG}", 0),
            counters.get(principal_key(org_id, principal_type, principal_id), 0),
        )

    def get(
        self,
        org_id: str,
        principal_type: PrincipalType,
        principal_id: str,
        project_id: str | None,
    ) -> frozenset[str] | None:
        key = (org_id, principal_type, principal_id, project_id or "")
        entry = self._entries.get(key)
        if entry is None:
            return None
        version = self._version
        if entry[2] == version:  # nothing invalidated since it was found current
            return entry[0]
        if entry[1] != self.stamp(org_id, principal_type, principal_id):
            del self._entries[key]
            return None
        self._entries[key] = (entry[0], entry[1], version)
        return entry[0]

    def put(
        self,
        org_id: str,
        principal_type: PrincipalType,
        principal_id: str,
        project_id: str | None,
        permissions: frozenset[str],
        stamp: Stamp,
    ) -> None:
        if stamp != self.stamp(org_id, principal_type, principal_id):
            return  # changed while it was computed
        entries = self._entries
        key = (org_id, principal_type, principal_id, project_id or "")
        if key not in entries and len(entries) >= self._max_entries:
            del entries[next(iter(entries))]
        entries[key] = (permissions, stamp, self._version)

    def invalidate(self, key: str) -> None:
        """Bump one counter (an :func:`invalidation_key`)."""
        self._version += 1
        counters = self._counters
        if key not in counters and len(counters) >= self._max_counters:
            self.clear()
        counters[key] = counters.get(key, 0) + 1

    def clear(self) -> None:
        self._version += 1
        self._epoch += 1
        self._counters.clear()
        self._entries.clear()
