"""Key rows cached per node for verification (issue 12, section 3: "fast", and "revocation is
seen on every node at once").

A verification needs the key's row and its owner's standing (``KeyInUse``, one statement). On a
hit the request costs one HMAC and no database round trip. What may be cached, and when it goes:

- Only a row that can verify: not revoked, its owner active. Anything else is read from the
  database every time, so re-enabling an owner needs no invalidation, and a refused key never
  sits in the cache.
- Every change that can stop a key or change its secret names what it touches, on every node,
  through the revocation fan-out (kind ``api_key_row``; web/runtime.py ``Unit.api_keys_changed``:
  a ``revocations`` row for the other nodes' poll, this node at once and after the commit, other
  nodes by pub/sub after the commit): one key (``key|<id>``: revoked, rotated), one owner
  (``owner|<type>|<id>``: a member removed, a user or service account disabled or deleted), or
  one organization (``org|<id>``: deleted, a project deleted). SQLite's catch-up
  (``Runtime.catch_up``) drops everything when another process wrote.
- Races: a fetch records the node's change sequence *before* it reads (:meth:`KeyCache.begin`);
  the row is stored only if nothing it depends on was invalidated since (an invalidation that
  arrives while the read runs wins), and a stored row is valid only while nothing it depends on
  has been invalidated after it was read.
- A presented secret that matches neither hash of the cached row is checked against a fresh
  read (a rotation committed elsewhere whose invalidation has not arrived yet), so a new secret
  works at once everywhere.

Bounded: at ``max_entries`` the oldest row goes; at ``max_marks`` invalidation marks everything
is dropped (safe: only misses). Whether a key id is cached is visible only as timing of a
database read, for an id that was recently used with its valid secret; the secret comparison
itself stays constant-time (features/apikeys/service.py).
"""

from __future__ import annotations

from ostiary.features.apikeys.models import KeyInUse

__all__ = ["KeyCache", "key_mark", "org_mark", "owner_mark"]


def key_mark(key_id: str) -> str:
    return f"key|{key_id}"


def owner_mark(owner_type: str, owner_id: str) -> str:
    return f"owner|{owner_type}|{owner_id}"


def org_mark(org_id: str) -> str:
    return f"org|{org_id}"


class KeyCache:
    __slots__ = ("_entries", "_floor", "_marks", "_max_entries", "_max_marks", "_seq")

    def __init__(self, *, max_entries: int = 100_000, max_marks: int = 100_000) -> None:
        # key id -> (row, the sequence number read before it was fetched)
        self._entries: dict[str, tuple[KeyInUse, int]] = {}
        # mark -> the sequence number of its last invalidation
        self._marks: dict[str, int] = {}
        self._seq = 0
        self._floor = 0  # everything read before this is stale (clear())
        self._max_entries = max_entries
        self._max_marks = max_marks

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self) -> int:
        """Call before reading a row from the database; pass the result to :meth:`put`."""
        return self._seq

    def _current(self, found: KeyInUse, read_at: int) -> bool:
        if read_at < self._floor:
            return False
        marks = self._marks
        if not marks:
            return True
        key = found.key
        return (
            marks.get(key_mark(key.id), 0) <= read_at
            and marks.get(owner_mark(key.owner_type, key.owner_id), 0) <= read_at
            and marks.get(org_mark(key.organization_id), 0) <= read_at
        )

    def holds(self, found: KeyInUse, read_at: int) -> bool:
        """Whether a row read after :meth:`begin` returned ``read_at`` is still current: nothing
        it depends on was invalidated since (for answers kept elsewhere that rest on the row,
        features/apikeys/callers.py). No invalidation at all since then is one comparison."""
        return read_at == self._seq or self._current(found, read_at)

    def get(self, key_id: str) -> KeyInUse | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if not self._current(*entry):
            del self._entries[key_id]
            return None
        return entry[0]

    def put(self, found: KeyInUse, read_at: int) -> None:
        """Keep a row read after :meth:`begin` returned ``read_at``, if it can verify and nothing
        it depends on changed since."""
        if found.key.revoked_at is not None or not found.owner_active:
            return
        if not self._current(found, read_at):
            return
        entries = self._entries
        key_id = found.key.id
        if key_id in entries:
            del entries[key_id]
        elif len(entries) >= self._max_entries:
            del entries[next(iter(entries))]
        entries[key_id] = (found, read_at)

    def invalidate(self, mark: str) -> None:
        """One mark (:func:`key_mark`, :func:`owner_mark`, :func:`org_mark`) changed: rows that
        depend on it, cached or being read now, are stale."""
        self._seq += 1
        marks = self._marks
        if mark not in marks and len(marks) >= self._max_marks:
            self.clear()
            return
        marks[mark] = self._seq

    def clear(self) -> None:
        self._seq += 1
        self._floor = self._seq
        self._marks.clear()
        self._entries.clear()
