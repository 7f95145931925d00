"""Stores the accounts feature needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ostiary.features.accounts.models import User

__all__ = ["AccountListener", "LoginThrottle", "UserStore"]


class UserStore(Protocol):
    async def get(self, user_id: str) -> User | None: ...

    async def get_many(self, user_ids: Sequence[str]) -> list[User]:
        """The users among ``user_ids`` that exist, in one query (unknown ids are skipped)."""
        ...

    async def get_by_email(self, email: str) -> User | None:
        """Look up by normalized e-mail (case-insensitive)."""
        ...

    async def add(self, user: User) -> None:
        """Insert; raise ``EmailTaken`` if the normalized e-mail exists."""
        ...

    async def update(self, user: User) -> None: ...

    async def update_email(self, user: User) -> None:
        """:meth:`update` of a user whose e-mail changed; raise ``EmailTaken`` (and change
        nothing) if another account holds the normalized address."""
        ...

    async def list(self, limit: int = 100, offset: int = 0) -> list[User]: ...


class LoginThrottle(Protocol):
    """Sign-in attempts per key (``ip:<addr>``, ``account:<email>``, ``device:<id>``) in a
    moving window. An attempt takes its slots before the password is checked, atomically, so
    that concurrent guesses cannot all pass a limit that none of them has reached yet."""

    async def acquire(self, keys: Sequence[str], attempt: str, now: datetime) -> int:
        """Take a slot for ``attempt`` (a random id) in every key's window, all or none.

        0 when taken; otherwise nothing is held and the answer is the seconds to wait.
        """
        ...

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        """Give back the attempt's slots in ``keys`` (a success is not a failure)."""
        ...

    async def clear(self, key: str) -> None:
        """Forget every attempt counted under ``key``."""
        ...


class AccountListener(Protocol):
    """Told when an account is disabled, e.g. to revoke its tokens on every node, and when
    what other features keep of it changed (its e-mail address)."""

    async def user_disabled(self, user_id: str) -> None: ...

    async def user_changed(self, user_id: str) -> None: ...
