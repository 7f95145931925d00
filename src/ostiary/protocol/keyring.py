"""Signing key ring with validity windows.

A key goes through three phases, all derived from two instants and the ring's order:

1. *published*: from ``created_at`` it is in JWKS, so verifiers that cache JWKS learn it
   before any token is signed with it (OpenID Connect Core 1.0 section 10.1.1, "Rotation of
   Asymmetric Signing Keys": publish the new key first, sign with it later);
2. *active*: from ``activates_at`` it signs, until the next key's ``activates_at``; the key
   active at time ``t`` is found by binary search over the sorted activation times;
3. *retired*: it no longer signs but stays published until every token it signed can have
   expired (its successor's activation + the longest token lifetime), then it is dropped
   from JWKS (RFC 7517 section 5 JWK Set; RFC 7515 section 4.1.4 ``kid`` selection).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["KeyWindow", "SigningKeyRing"]


@dataclass(frozen=True, slots=True)
class KeyWindow:
    """What the ring needs to know of one key."""

    kid: str
    created_at: datetime
    activates_at: datetime


class SigningKeyRing:
    """Keys ordered by activation time; answers "which key signs at t" and "what is published"."""

    __slots__ = ("_activations", "_keys", "_max_token_ttl")

    def __init__(self, keys: Iterable[KeyWindow], max_token_ttl: timedelta) -> None:
        self._keys = sorted(keys, key=lambda k: (k.activates_at, k.kid))
        self._activations = [k.activates_at for k in self._keys]
        self._max_token_ttl = max_token_ttl

    def __len__(self) -> int:
        return len(self._keys)

    def active_at(self, now: datetime) -> KeyWindow | None:
        """The key that signs at ``now``: the latest activated one (binary search)."""
        index = bisect_right(self._activations, now) - 1
        return self._keys[index] if index >= 0 else None

    def retired_at(self, kid: str) -> datetime | None:
        """When ``kid`` stopped (or will stop) signing: its successor's activation."""
        for index, key in enumerate(self._keys):
            if key.kid == kid:
                following = self._keys[index + 1 :]
                return following[0].activates_at if following else None
        return None

    def published_at(self, now: datetime) -> list[KeyWindow]:
        """Keys a verifier must be able to find in JWKS at ``now``, newest first."""
        published: list[KeyWindow] = []
        for index, key in enumerate(self._keys):
            if key.created_at > now:
                continue
            successor = self._keys[index + 1] if index + 1 < len(self._keys) else None
            if successor is not None and now >= successor.activates_at + self._max_token_ttl:
                continue
            published.append(key)
        published.reverse()
        return published
