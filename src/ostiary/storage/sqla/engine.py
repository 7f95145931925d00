"""Engine construction for SQLite (aiosqlite, WAL, foreign keys) and PostgreSQL (asyncpg).

SQLite allows one writer. A transaction that reads and then writes can fail with
SQLITE_BUSY_SNAPSHOT when another connection committed in between, whatever the busy timeout,
so every SQLite transaction starts with ``BEGIN IMMEDIATE`` (takes the write lock up front; a
competing process waits up to the busy timeout instead of failing) and the process uses one
connection: SQLite serializes writers anyway, and in-process queueing is cheaper than lock
retries. Readers in other processes (the CLI) still see a consistent WAL snapshot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

__all__ = ["create_engine", "is_sqlite"]

_BUSY_TIMEOUT_S = 15


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo)
    if parsed.drivername == "postgresql" or parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping and no ROLLBACK per checkout: each would be a round trip on every request,
        # and the unit of work always ends its transaction. Stale connections are recycled.
        pool_pre_ping=False,
        pool_reset_on_return=None,
        pool_recycle=300,
    )


def _sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        # The unit of work always commits or rolls back, and a unit that ran no statement has
        # nothing to reset: skip the ROLLBACK (a thread hop in aiosqlite) on every check-in.
        pool_reset_on_return=None,
        pool_timeout=60,
        connect_args={"timeout": _BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
