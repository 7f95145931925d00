"""The accounts and sessions features, seen from the authorization server (``UserDirectory``)."""

from __future__ import annotations

from typing import Any

from ostiary.features.accounts.service import AccountService
from ostiary.features.oauth.service import user_claims_for
from ostiary.features.sessions.service import SessionService

__all__ = ["AccountDirectory"]


class AccountDirectory:
    def __init__(self, accounts: AccountService, sessions: SessionService) -> None:
        self._accounts = accounts
        self._sessions = sessions

    async def user_claims(self, user_id: str, scopes: tuple[str, ...]) -> dict[str, Any] | None:
        user = await self._accounts.get(user_id)
        if user is None or user.disabled:
            return None
        return user_claims_for(user, scopes)

    async def session_active(self, sid: str) -> bool:
        return await self._sessions.is_active(sid)
