"""Engine construction for SQLite (stdlib ``sqlite3`` on the event loop, WAL, foreign keys) and
PostgreSQL (asyncpg).

SQLite runs on the event loop thread. A statement of ours against a local WAL database takes
microseconds, while a thread hop per call (aiosqlite: four per statement through SQLAlchemy's
adapter) costs a cross-thread wake-up each and was half the CPU of a page view. So the engine
uses the standard ``sqlite3`` driver under SQLAlchemy's aiosqlite dialect, through coroutines
that complete without suspending (``inline_sqlite.py``). The only call that could wait long is
taking the write lock while *another process* (the CLI, a second worker) holds it; that wait is
an ``asyncio.sleep`` loop, never a blocking busy handler (``busy_timeout`` is 0).

SQLite allows one writer. A transaction that reads and then writes can fail with
SQLITE_BUSY_SNAPSHOT when another connection committed in between, so every SQLite transaction
starts with ``BEGIN IMMEDIATE`` (takes the write lock up front) and the process uses one
connection: SQLite serializes writers anyway, and in-process queueing (the pool of one) is
cheaper than lock retries. Readers in other processes (the CLI) still see a consistent WAL
snapshot.

Checkpoints (https://sqlite.org/wal.html#ckpt) copy the WAL's pages back into the database
file and fsync both. By default the commit that finds the WAL over 1,000 pages does that
itself, on the loop: a refresh grant commits about five pages, so under load every ~200th
request stalled the loop for ~5 ms, and every request queued behind it waited too (bench/:
the refresh p99). A server runs :class:`WalCheckpointer` instead: a PASSIVE checkpoint from a
worker thread every fraction of a second, on its own connection, concurrent with the writer;
the loop's connection checkpoints only if the WAL reaches ``WAL_AUTOCHECKPOINT_PAGES`` (the
worker stopped or fell far behind).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any, NamedTuple

import structlog
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_

from ostiary.storage.sqla.inline_sqlite import DRIVER, InlineConnection

__all__ = [
    "LOCK_WAIT_SECONDS",
    "WAL_AUTOCHECKPOINT_PAGES",
    "Checkpoint",
    "ExternalWrites",
    "WalCheckpointer",
    "create_engine",
    "execute_waiting",
    "is_sqlite",
    "pool_capacity",
    "sqlite_url",
    "unit_engine",
]

LOCK_WAIT_SECONDS = 15.0
# SQLite's default is 1,000 pages; 10,000 (40 MiB at 4 KiB pages) leaves the checkpoints to
# WalCheckpointer and still bounds the WAL when it is not running.
WAL_AUTOCHECKPOINT_PAGES = 10_000

log = structlog.get_logger("ostiary.storage")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_url(url: str | URL) -> URL:
    """Any ``sqlite://`` / ``sqlite+aiosqlite://`` URL, on the in-loop driver."""
    return make_url(url).set(drivername=f"sqlite+{DRIVER}")


def pool_capacity(engine: AsyncEngine) -> int:
    """How many units of work may hold a connection at once (uow.connection_gate): the pool's
    size; its overflow is left to what runs outside units (readiness checks, migrations)."""
    return int(engine.pool.size())  # type: ignore[attr-defined]


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
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


def unit_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine units of work check connections out of (uow.py, driver.py).

    On PostgreSQL its connections are in SQLAlchemy's AUTOCOMMIT mode, so that SQLAlchemy
    never starts a transaction of its own on them: the unit begins and ends one on the driver,
    and every statement, SQLAlchemy's or the driver's, runs inside it. Same pool, same
    connections; the mode is set at checkout and reset at check-in. SQLite needs nothing: the
    "begin" hook below sees the unit's transaction already open.
    """
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _raw(dbapi_connection: Any) -> sqlite3.Connection:
    """The stdlib connection under SQLAlchemy's pooled adapter."""
    inline: InlineConnection = dbapi_connection.driver_connection
    return inline.sqlite


async def execute_waiting(connection: sqlite3.Connection, sql: str) -> None:
    """Run ``sql``, waiting for another process's lock without blocking the loop.

    Awaited by a unit of work's driver (driver.py, ``BEGIN IMMEDIATE``) and, through ``await_``
    from SQLAlchemy's greenlet, by the connect and "begin" hooks below: either way only the
    caller waits. Gives up with SQLite's "database is locked", wrapped as SQLAlchemy wraps a
    statement's error, after ``LOCK_WAIT_SECONDS``.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.001
    while True:
        try:
            connection.execute(sql).close()
            return
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() >= deadline:
                raise OperationalError(sql, (), exc) from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    engine = create_async_engine(
        sqlite_url(url),
        echo=echo,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        # The unit of work always commits or rolls back: no ROLLBACK on every check-in.
        pool_reset_on_return=None,
        pool_timeout=60,
        # Never block the loop in SQLite's busy handler (see module doc); the connection is
        # used from the loop thread only, but disposal may run elsewhere at exit.
        connect_args={"timeout": 0, "check_same_thread": False},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        raw = _raw(dbapi_connection)
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            "synchronous=NORMAL",
            f"wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}",
        ):
            # Switching to WAL takes the lock once.
            await_(execute_waiting(raw, f"PRAGMA {pragma}"))

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        raw = _raw(connection.connection)
        if not raw.in_transaction:  # a unit of work began it on the driver (driver.py)
            await_(execute_waiting(raw, "BEGIN IMMEDIATE"))

    return engine


class ExternalWrites:
    """The ``PRAGMA data_version`` of this process's SQLite connection.

    The value changes only when *another* connection (the CLI, another process) commits
    (https://sqlite.org/pragma.html#pragma_data_version), so comparing it with the value seen
    at the last catch-up tells whether in-process state (caches, the revocation set) may be
    behind the database. Reading it is a pragma on the loop thread, microseconds; it is read
    from the raw connection without a pool checkout, which is harmless for a read-only pragma
    (all statements run on the loop thread, so none runs concurrently with it).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._raw: sqlite3.Connection | None = None
        event.listen(engine.sync_engine, "connect", self._attach)

    def _attach(self, dbapi_connection: Any, _record: Any) -> None:
        self._raw = _raw(dbapi_connection)

    def version(self) -> int | None:
        """None before the first connection (or after it closed): assume changes."""
        raw = self._raw
        if raw is None:
            return None
        try:
            row = raw.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            self._raw = None
            return None
        return int(row[0])


class Checkpoint(NamedTuple):
    """What ``PRAGMA wal_checkpoint`` reports (https://sqlite.org/pragma.html#pragma_wal_checkpoint)."""

    busy: bool  # another connection was checkpointing
    wal_frames: int
    checkpointed_frames: int


class WalCheckpointer:
    """PASSIVE checkpoints of a SQLite database from a worker thread (see the module doc).

    PASSIVE never waits for locks and never blocks the writer: it copies what no reader still
    needs, and the next writer starts the WAL over from its beginning once all of it is copied.
    """

    def __init__(self, database: str, *, interval: float = 0.2) -> None:
        self._database = database
        self._interval = interval
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # A cancelled ``to_thread`` leaves its checkpoint running: close() must wait for it
        # rather than close the connection under it.
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> WalCheckpointer | None:
        """A checkpointer for a file-backed SQLite engine; None for others (and ``:memory:``)."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(url.database)

    def checkpoint(self) -> Checkpoint:
        """One PASSIVE checkpoint; blocking (file I/O and fsync), so call it off the loop."""
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the checkpointer is closed")
            if self._conn is None:
                # Autocommit: the checkpoint connection never holds a read transaction open.
                self._conn = sqlite3.connect(
                    self._database, timeout=0, isolation_level=None, check_same_thread=False
                )
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        busy, frames, done = row
        return Checkpoint(bool(busy), int(frames), int(done))

    async def run_forever(self) -> None:
        """Checkpoint every ``interval`` seconds in a worker thread until cancelled."""
        try:
            while True:
                try:
                    await asyncio.to_thread(self.checkpoint)
                except sqlite3.Error as exc:  # a full disk, say; the loop's writes go on
                    log.warning("wal_checkpoint_failed", error=str(exc))
                await asyncio.sleep(self._interval)
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection, after a checkpoint still running in its thread (if any)."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
