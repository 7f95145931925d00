"""SQL adapter of the retention port: one table's expired rows, deleted in bounded batches.

``DELETE ... WHERE key IN (SELECT key ... WHERE expires_at < :before LIMIT :n)`` works the same
on SQLite and PostgreSQL. On PostgreSQL the inner select takes its rows ``FOR UPDATE SKIP
LOCKED``: replicas purging at the same moment split the rows between them instead of waiting
on (or deadlocking over) each other's row locks. SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ColumnElement, Table, delete, select

from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlExpiredRows"]


class SqlExpiredRows:
    def __init__(
        self,
        conn: Connection,
        table: Table,
        *,
        key: str,
        expires_at: str = "expires_at",
        only: ColumnElement[bool] | None = None,
    ) -> None:
        """``only``: a condition the rows must also meet (e.g. pending TOTP enrollments,
        whose ``expires_at`` is their ``created_at`` plus the rule's keep time)."""
        self._conn = conn
        self._table = table
        self._key: Column[str] = table.c[key]
        self._expires_at: Column[datetime] = table.c[expires_at]
        self._only = only

    async def purge_expired(self, before: datetime, limit: int) -> int:
        doomed = select(self._key).where(self._expires_at < before)
        if self._only is not None:
            doomed = doomed.where(self._only)
        doomed = doomed.limit(limit).with_for_update(skip_locked=True)
        result = await self._conn.execute(delete(self._table).where(self._key.in_(doomed)))
        return int(result.rowcount)
