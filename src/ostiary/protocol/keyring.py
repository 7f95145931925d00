"""Signing key ring with validity windows, one chain of keys per signing algorithm.

A key goes through three phases, all derived from two instants and its algorithm's chain:

1. *published*: from ``created_at`` it is in JWKS, so verifiers that cache JWKS learn it
   before any token is signed with it (OpenID Connect Core 1.0 section 10.1.1, "Rotation of
   Asymmetric Signing Keys": publish the new key first, sign with it later);
2. *active*: from ``activates_at`` it signs tokens of its algorithm, until the next key of the
   same algorithm activates (or its explicit ``retired_at``); the key active at time ``t`` is
   found by binary search over the chain's sorted activation times;
3. *retired*: it no longer signs but stays published until every token it signed can have
   expired (end of its window + the longest token lifetime), then it is dropped from JWKS
   (RFC 7517 section 5 JWK Set; RFC 7515 section 4.1.4 ``kid`` selection).

Each client receives tokens of one algorithm (OpenID Connect Dynamic Client Registration 1.0
section 2 ``id_token_signed_response_alg``), so the chains are independent: rotating the RS256
key never changes which ES256 or EdDSA key signs (OpenID Connect Core 1.0 section 15.1 makes
RS256 mandatory to implement; the others are kept beside it, not instead of it).
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
    alg: str
    created_at: datetime
    activates_at: datetime
    # Stops signing here even without a successor of its algorithm (a key that a switch of
    # the deployment's single algorithm retired before algorithms had chains of their own).
    retired_at: datetime | None = None


class _Chain:
    """The keys of one algorithm, ordered by activation."""

    __slots__ = ("activations", "keys")

    def __init__(self, keys: list[KeyWindow]) -> None:
        self.keys = sorted(keys, key=lambda k: (k.activates_at, k.kid))
        self.activations = [k.activates_at for k in self.keys]

    def end(self, index: int) -> datetime | None:
        """When the key at ``index`` stops signing: its successor's activation or its own
        retirement, whichever is first; None while neither is set."""
        key = self.keys[index]
        ends = [key.retired_at] if key.retired_at is not None else []
        if index + 1 < len(self.keys):
            ends.append(self.keys[index + 1].activates_at)
        return min(ends) if ends else None


class SigningKeyRing:
    """Keys by algorithm; answers "which key of alg signs at t" and "what is published"."""

    __slots__ = ("_chains", "_max_token_ttl")

    def __init__(self, keys: Iterable[KeyWindow], max_token_ttl: timedelta) -> None:
        by_alg: dict[str, list[KeyWindow]] = {}
        for key in keys:
            by_alg.setdefault(key.alg, []).append(key)
        self._chains = {alg: _Chain(chain) for alg, chain in by_alg.items()}
        self._max_token_ttl = max_token_ttl

    def __len__(self) -> int:
        return sum(len(chain.keys) for chain in self._chains.values())

    def active_at(self, now: datetime, alg: str) -> KeyWindow | None:
        """The key of ``alg`` that signs at ``now``: the latest activated one of that
        algorithm (binary search), unless it was retired."""
        chain = self._chains.get(alg)
        if chain is None:
            return None
        index = bisect_right(chain.activations, now) - 1
        if index < 0:
            return None
        end = chain.end(index)
        return chain.keys[index] if end is None or now < end else None

    def usable(self, alg: str) -> bool:
        """``alg`` has a key that signs now or will (its newest key is not retired)."""
        chain = self._chains.get(alg)
        return chain is not None and chain.keys[-1].retired_at is None

    def retired_at(self, kid: str) -> datetime | None:
        """When ``kid`` stopped (or will stop) signing; None while it has no end."""
        for chain in self._chains.values():
            for index, key in enumerate(chain.keys):
                if key.kid == kid:
                    return chain.end(index)
        return None

    def published_at(self, now: datetime) -> list[KeyWindow]:
        """Keys a verifier must be able to find in JWKS at ``now``, newest first."""
        published: list[KeyWindow] = []
        for chain in self._chains.values():
            for index, key in enumerate(chain.keys):
                if key.created_at > now:
                    continue
                end = chain.end(index)
                if end is not None and now >= end + self._max_token_ttl:
                    continue
                published.append(key)
        published.sort(key=lambda k: (k.activates_at, k.kid), reverse=True)
        return published
