"""The accounts and sessions features, seen from the authorization server (``UserDirectory``).

Claims come from the process-local user cache (``features/cache.py``): a change made on this
node is seen at once, another node's within the cache's age bound (5 s). Whether tokens may
still be issued never rests on it: refresh families, sessions and the revocation set are
checked against their stores first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from ostiary.features.accounts.service import AccountService
from ostiary.features.oauth.service import user_claims_for
from ostiary.features.sessions.service import SessionService

__all__ = ["AccountDirectory", "AccountsAndSessions"]


class AccountsAndSessions(Protocol):
    """Where the two services come from: a unit of work (web/runtime.py ``Unit``) that builds
    each on first use."""

    @property
    def accounts(self) -> AccountService: ...

    @property
    def sessions(self) -> SessionService: ...


class AccountDirectory:
    """Reads ``source.accounts`` and ``source.sessions`` only when a grant asks about a user:
    a client_credentials grant, which has none, does not build them (nor the audit trail
    and stores under them)."""

    def __init__(self, source: AccountsAndSessions) -> None:
        self._source = source

    async def user_claims(
        self, user_id: str, scopes: tuple[str, ...], extra: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        user = await self._source.accounts.get_cached(user_id)
        if user is None or user.disabled:
            return None
        return user_claims_for(user, scopes, extra)

    async def session_active(self, sid: str) -> bool:
        return await self._source.sessions.is_active(sid)

    async def session_expires_at(self, sid: str) -> datetime | None:
        return await self._source.sessions.expires_at(sid)
