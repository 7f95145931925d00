"""In-process session store (single process only; no sharing between nodes)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ostiary.features.sessions.models import Session

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    def __init__(self, limit: int = 100_000) -> None:
        self._by_sid: dict[str, Session] = {}
        self._sid_by_hash: dict[str, str] = {}
        self._limit = limit

    async def add(self, session: Session) -> None:
        if len(self._by_sid) >= self._limit:
            # Bounded: evict the oldest-created session rather than grow without limit.
            oldest = min(self._by_sid.values(), key=lambda s: s.created_at)
            await self.delete(oldest.sid)
        self._by_sid[session.sid] = _copy(session)
        self._sid_by_hash[session.token_hash] = session.sid

    async def by_token_hash(self, token_hash: str) -> Session | None:
        sid = self._sid_by_hash.get(token_hash)
        return await self.get(sid) if sid else None

    async def get(self, sid: str) -> Session | None:
        found = self._by_sid.get(sid)
        return _copy(found) if found else None

    async def touch(self, sid: str, last_seen: datetime) -> None:
        found = self._by_sid.get(sid)
        if found is not None:
            found.last_seen = last_seen

    async def list_for_user(self, user_id: str) -> list[Session]:
        mine = [dataclasses.replace(s) for s in self._by_sid.values() if s.user_id == user_id]
        return sorted(mine, key=lambda s: (s.created_at, s.sid), reverse=True)

    async def delete(self, sid: str) -> bool:
        found = self._by_sid.pop(sid, None)
        if found is None:
            return False
        self._sid_by_hash.pop(found.token_hash, None)
        return True

    async def delete_for_user(self, user_id: str, keep_sid: str | None = None) -> list[str]:
        sids = [s.sid for s in self._by_sid.values() if s.user_id == user_id and s.sid != keep_sid]
        for sid in sids:
            await self.delete(sid)
        return sids

    async def trim_for_user(self, user_id: str, keep: int) -> list[str]:
        surplus = [s.sid for s in (await self.list_for_user(user_id))[keep:]]
        for sid in surplus:
            await self.delete(sid)
        return surplus


def _copy(session: Session) -> Session:
    return dataclasses.replace(
        session, amr=list(session.amr), factor_times=dict(session.factor_times)
    )
