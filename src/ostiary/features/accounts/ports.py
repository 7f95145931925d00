"""Stores the accounts feature needs."""

from __future__ import annotations

from typing import Protocol

from ostiary.features.accounts.models import User

__all__ = ["AccountListener", "LoginThrottle", "UserStore"]


class UserStore(Protocol):
    async def get(self, user_id: str) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None:
        """Look up by normalized e-mail (case-insensitive)."""
        ...

    async def add(self, user: User) -> None:
        """Insert; raise ``EmailTaken`` if the normalized e-mail exists."""
        ...

    async def update(self, user: User) -> None: ...

    async def list(self, limit: int = 100, offset: int = 0) -> list[User]: ...


class LoginThrottle(Protocol):
    """Counts failed sign-ins per key (``account:<id>``, ``ip:<addr>``) in a sliding window."""

    async def retry_after(self, keys: list[str]) -> int:
        """Seconds to wait before another attempt is allowed for any of ``keys`` (0 = go)."""
        ...

    async def record_failure(self, keys: list[str]) -> None: ...

    async def clear(self, key: str) -> None: ...


class AccountListener(Protocol):
    """Told when an account is disabled, e.g. to revoke its tokens on every node."""

    async def user_disabled(self, user_id: str) -> None: ...
