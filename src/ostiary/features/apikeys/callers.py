"""Callers' own API keys as verified on this node (issue 12, section 3: a gateway presents the
same service-account key as its bearer credential with every ``POST /api/v1/keys/verify``).

Authenticating that key is a full verification (the HMAC, the row, two constant-time
comparisons, the owner's effective permissions, the principal) whose answer is the same request
after request: half of what the route does. An entry keeps the answer, together with what it
rests on, and is used only while all of that still holds; on every use
(features/apikeys/verification.py ``KeyVerifier.authenticate_caller``) the verifier checks:

- ``until``: the key's ``expires_at`` against the clock, and, when the presented secret was the
  one replaced by a rotation, the end of the overlap (``previous_expires_at``);
- ``found`` and ``read_at``: the key row the answer was built from is still current in the
  node's key cache (features/apikeys/cache.py ``KeyCache.holds``): no invalidation of the key
  (revoked, rotated), of its owner (removed from the organization, disabled, deleted) or of its
  organization (deleted, a project deleted), and no ``clear`` (SQLite's catch-up after another
  process wrote, a rolled-back change), on any node, since ``read_at``;
- ``stamp``: the owner's permission stamp (features/rbac/cache.py), which a change of the
  owner's roles, of a role it holds, or of the organization's roles moves on every node;
- the client address against the key's IP allowlist (an address outside it is refused; not
  part of the entry's key, so one entry serves a gateway's every address).

``read_at`` is read before the row, and ``stamp`` before the permissions are computed, so a
change arriving meanwhile leaves an entry that is never used. Refusals are not kept. Entries are
named by the presented key's HMAC digest (protocol/opaque_secrets.py), not by the key itself: a
digest is what the database stores anyway, so this node's memory holds no bearer secret it
would not hold otherwise, and a presented value cannot steer the lookup (the digest is keyed by
the server's pepper). The key id is in the presented key, so the digest names the key too.
Bounded: at ``max_entries`` the oldest entry goes.
"""

from __future__ import annotations

from datetime import datetime

from ostiary.features.apikeys.models import ApiKeyPrincipal, KeyInUse

__all__ = ["KnownCaller", "KnownCallers"]


class KnownCaller:
    """A caller's key as verified: the answer and what it rests on (see the module docstring).
    ``read_at`` moves forward each time the key cache confirms the row is still current."""

    __slots__ = ("found", "principal", "read_at", "stamp", "until")

    def __init__(
        self,
        principal: ApiKeyPrincipal,
        found: KeyInUse,
        read_at: int,
        stamp: object,
        until: datetime | None,
    ) -> None:
        self.principal = principal
        self.found = found
        self.read_at = read_at
        self.stamp = stamp
        self.until = until


class KnownCallers:
    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, KnownCaller] = {}  # the presented key's digest -> entry
        self._max = max(1, max_entries)

    def get(self, digest: str) -> KnownCaller | None:
        return self._entries.get(digest)

    def put(self, digest: str, caller: KnownCaller) -> None:
        entries = self._entries
        if digest not in entries and len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[digest] = caller

    def discard(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
