"""The signing key store."""

from __future__ import annotations

from typing import Protocol

from ostiary.features.keys.models import SigningKey

__all__ = ["SigningKeyStore"]


class SigningKeyStore(Protocol):
    async def all(self) -> list[SigningKey]: ...

    async def add(self, key: SigningKey) -> None: ...

    async def add_first(self, key: SigningKey) -> bool:
        """Insert ``key`` only if the store holds no unretired key of ``key.alg``, atomically
        across processes (a database-level guard, not a process lock); True if inserted."""
        ...
