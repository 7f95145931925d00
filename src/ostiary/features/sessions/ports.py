"""The session store port; memory, SQL and Redis adapters pass one contract test suite."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ostiary.features.sessions.models import Session

__all__ = ["SessionEndListener", "SessionStore"]


class SessionStore(Protocol):
    async def add(self, session: Session) -> None: ...

    async def by_token_hash(self, token_hash: str) -> Session | None: ...

    async def get(self, sid: str) -> Session | None: ...

    async def touch(self, sid: str, last_seen: datetime) -> None:
        """Record activity (idle timeout is measured from ``last_seen``)."""
        ...

    async def list_for_user(self, user_id: str) -> list[Session]:
        """The user's stored sessions, newest first."""
        ...

    async def delete(self, sid: str) -> bool:
        """Remove one session; True if it existed."""
        ...

    async def delete_for_user(self, user_id: str, keep_sid: str | None = None) -> list[str]:
        """Remove every session of ``user_id`` except ``keep_sid``; return the removed sids."""
        ...

    async def trim_for_user(self, user_id: str, keep: int) -> list[str]:
        """Remove all but the ``keep`` newest sessions of ``user_id``; return the removed sids.

        In the order of :meth:`list_for_user`. Called on every sign-in, so it reads sids only.
        """
        ...


class SessionEndListener(Protocol):
    """Told when sessions end on purpose (sign-out, revocation), e.g. to revoke their tokens."""

    async def sessions_ended(self, sids: list[str]) -> None: ...
