"""Organizations by id or slug, cached per node (issue 13, section 4: the AuthZEN caller names
its organization in the ``Ostiary-Organization`` header on every decision).

An entry is an :class:`Organization` under the reference it was looked up by (its id, or its
slug). Any change of an organization's row (rename, new slug, ``require_acr``) and its deletion
invalidate it on every node through the revocation fan-out (web/runtime.py, the ``org`` kind:
a ``revocations`` row for other nodes' poll, this node at once and after the commit, pub/sub
after the commit), which drops every entry of that organization, whichever reference it was
cached under. A slug lookup does not know the organization before it reads, so the stamp is
global: :meth:`OrgCache.stamp` is read before the fetch and :meth:`OrgCache.put` keeps the
result only if no invalidation arrived meanwhile (it could describe the row before a change).
Unknown references are not cached. Bounded: at ``max_entries`` the oldest entry goes.
"""

from __future__ import annotations

from ostiary.features.orgs.models import Organization

__all__ = ["OrgCache"]


class OrgCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, Organization] = {}
        self._refs: dict[str, set[str]] = {}  # organization id -> the references cached
        self._seq = 0
        self._max = max(1, max_entries)

    def stamp(self) -> int:
        """Read before fetching: :meth:`put` refuses a result older than an invalidation."""
        return self._seq

    def get(self, ref: str) -> Organization | None:
        return self._entries.get(ref)

    def put(self, ref: str, org: Organization, stamp: int) -> None:
        if stamp != self._seq:
            return
        entries = self._entries
        if ref not in entries and len(entries) >= self._max:
            self._drop(next(iter(entries)))
        self._drop(ref)
        entries[ref] = org
        self._refs.setdefault(org.id, set()).add(ref)

    def _drop(self, ref: str) -> None:
        old = self._entries.pop(ref, None)
        if old is not None:
            refs = self._refs.get(old.id)
            if refs is not None:
                refs.discard(ref)
                if not refs:
                    del self._refs[old.id]

    def invalidate(self, org_id: str) -> None:
        """The organization changed or is gone: forget it under every reference."""
        self._seq += 1
        for ref in self._refs.pop(org_id, ()):
            self._entries.pop(ref, None)

    def clear(self) -> None:
        self._seq += 1
        self._entries.clear()
        self._refs.clear()

    def __len__(self) -> int:
        return len(self._entries)
