"""A bounded memo of our own JWTs whose signature verified, for introspection (RFC 7662) and
userinfo, which resource servers call with the same access token again and again.

Only the signature check is remembered, and only against the key set that verified it: the
key set object changes whenever a key is added or removed (KeyService.verification_keys), so a
token signed by a withdrawn key is verified afresh and refused. Everything else about the token
(``exp``, ``iss``, ``typ``, revocation) is checked on every call by the caller. ES256
verification was about a quarter of an introspection's CPU (bench/RESULTS.md).
"""

from __future__ import annotations

from joserfc.jwk import KeySet
from joserfc.jwt import Token

__all__ = ["VerifiedTokens"]


class VerifiedTokens:
    """Token string -> the decoded token, for the key set that verified it; oldest out first."""

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._entries: dict[str, tuple[KeySet, Token]] = {}

    def get(self, token: str, keys: KeySet) -> Token | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] is not keys:
            return None
        return entry[1]

    def put(self, token: str, keys: KeySet, decoded: Token) -> None:
        entries = self._entries
        entries.pop(token, None)
        if len(entries) >= self._limit:
            entries.pop(next(iter(entries)))
        entries[token] = (keys, decoded)

    def __len__(self) -> int:
        return len(self._entries)
