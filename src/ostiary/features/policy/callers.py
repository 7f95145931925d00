"""The decision API's callers as verified on this node (issue 13: a policy enforcement point
presents the same access token with every decision).

Authenticating a caller's access token and placing it in its organization (web/routes/
authzen.py) checks the token's signature, claims and audience, resolves the organization it
acts in and reads the permissions its user holds there: about a quarter of a single decision's
time, for the same answer request after request. An entry keeps that answer under the
credential and the organization reference it was given with, together with what it rests on,
and is used only while all of that still holds; the route checks, on every use:

- the token's ``exp`` (and ``iat``) against the clock, and the revocation set (a revoked
  token, an ended session, a disabled user: refused at once, as without the cache);
- ``keys``: the very key list the signature was verified under is still the current one and
  still fresh (features/keys/service.py ``SignerCache.current``), so a key withdrawn on any
  node stops its tokens within the key list's lifetime, as for introspection
  (features/oauth/verified.py);
- ``org_stamp``: the organization cache's stamp (features/orgs/cache.py), which any change of
  an organization (renamed, deleted) on any node moves;
- ``permission_stamp``: the permission cache's stamp of the token's user in that organization
  (features/rbac/cache.py), which a change of the user's roles or groups, the organization's
  roles, or the user leaving moves, on every node (the revocation fan-out).

Each stamp is read before what it guards is read, so a change arriving meanwhile leaves an
entry that is never used. Refusals are not kept. Bounded: at ``max_entries`` the oldest entry
goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CallerCache", "VerifiedCaller"]


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    organization_id: str
    user_id: str | None  # the token's user; None for a client's own token
    acr: str | None
    amr: tuple[str, ...]
    claims: Mapping[str, Any]  # exp, iat and what the revocation set is asked about
    keys: object  # the key list its signature was verified under (compared by identity)
    org_stamp: int
    permission_stamp: object  # None for a client's own token


class CallerCache:
    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[tuple[str, str], VerifiedCaller] = {}
        self._max = max(1, max_entries)

    def get(self, credential: str, org_ref: str) -> VerifiedCaller | None:
        return self._entries.get((credential, org_ref))

    def put(self, credential: str, org_ref: str, caller: VerifiedCaller) -> None:
        entries = self._entries
        key = (credential, org_ref)
        if key not in entries and len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[key] = caller

    def discard(self, credential: str, org_ref: str) -> None:
        self._entries.pop((credential, org_ref), None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
