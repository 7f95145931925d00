"""One transaction per unit of work (a request, a CLI command), opened on first use.

A request answered from in-process state alone (a client_credentials grant for a cached client,
an introspection, an account page from the session cache) never checks a connection out of the
pool: :class:`LazyConnection` opens it at the first statement and begins the transaction on the
driver (driver.py: ``BEGIN IMMEDIATE`` on SQLite, ``BEGIN`` on PostgreSQL). SQLAlchemy
statements and a repository's driver statements run in that one transaction; the unit commits
if the block succeeds and rolls back if it raises. One exception, on PostgreSQL only: driver
statements that are atomic alone (``driver(standalone=True)``) run before any BEGIN while the
unit has not needed one, which makes a refresh grant two round trips instead of five.

The engine given to :func:`transaction` must be ``engine.unit_engine(...)``'s (on PostgreSQL,
SQLAlchemy must not start transactions of its own on these connections).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from ostiary.storage.sqla.driver import Driver, driver_of

__all__ = ["GATE_WAIT_SECONDS", "Connection", "LazyConnection", "connection_gate", "transaction"]

GATE_WAIT_SECONDS = 60.0


class Connection(Protocol):
    """What repositories use of a connection: statements, savepoints, the dialect."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self,
        statement: Executable,
        parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    ) -> CursorResult[Any]: ...

    def begin_nested(self) -> Any:
        """An async context manager around a SAVEPOINT."""
        ...

    async def driver(self, *, standalone: bool = False) -> Driver:
        """The transaction's driver connection, for statements run without SQLAlchemy.

        ``standalone``: the caller's statements are each atomic alone (a read, a single-
        statement compare-and-set). On PostgreSQL they then run outside a transaction if the
        unit has not begun one yet, sparing the BEGIN and COMMIT round trips; they are in the
        unit's transaction otherwise, and always on SQLite.
        """
        ...


class LazyConnection:
    """An :class:`AsyncConnection` checked out of the pool, and its transaction begun on the
    driver, at the first statement."""

    __slots__ = ("_begun", "_conn", "_driver", "_engine", "_gate")

    def __init__(self, engine: AsyncEngine, gate: asyncio.Semaphore | None = None) -> None:
        self._engine = engine
        self._gate = gate
        self._conn: AsyncConnection | None = None
        self._driver: Driver | None = None
        self._begun = False

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    @property
    def opened(self) -> bool:
        return self._conn is not None

    async def _open(self) -> tuple[AsyncConnection, Driver]:
        if self._conn is None or self._driver is None:
            if self._gate is not None:
                # Bounded like SQLAlchemy's pool_timeout: a unit opened inside another on a
                # full pool fails loudly instead of waiting forever.
                async with asyncio.timeout(GATE_WAIT_SECONDS):
                    await self._gate.acquire()
            try:
                conn = await self._engine.connect()
                try:
                    driver = await driver_of(conn)
                    if driver.name == "sqlite":
                        # The write lock up front, whatever the unit runs (engine.py).
                        await driver.begin()
                        self._begun = True
                except BaseException:
                    await conn.close()
                    raise
            except BaseException:
                if self._gate is not None:
                    self._gate.release()
                raise
            self._conn, self._driver = conn, driver
        return self._conn, self._driver

    async def _begin(self, driver: Driver) -> None:
        if not self._begun:
            await driver.begin()
            self._begun = True

    async def connection(self) -> AsyncConnection:
        conn, driver = await self._open()
        await self._begin(driver)
        return conn

    async def driver(self, *, standalone: bool = False) -> Driver:
        _conn, driver = await self._open()
        if not standalone:
            await self._begin(driver)
        return driver

    async def execute(
        self,
        statement: Executable,
        parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    ) -> CursorResult[Any]:
        conn = self._conn if self._begun and self._conn is not None else await self.connection()
        return await conn.execute(statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        conn = await self.connection()
        async with conn.begin_nested():
            yield

    async def finish(self, *, commit: bool) -> None:
        """Commit or roll back and return the connection to the pool (if one was opened).

        SQLAlchemy's side first (on SQLite, if SQLAlchemy ran a statement, its commit is the
        driver's), then the driver's, which ends the transaction if it is still open. A
        connection that broke (a driver statement's error is not SQLAlchemy's to notice) or
        whose transaction could not be ended is discarded, not pooled.
        """
        conn, driver, begun = self._conn, self._driver, self._begun
        self._conn = self._driver = None
        self._begun = False
        if conn is None or driver is None:
            return
        try:
            if driver.closed:
                # Broken under a driver statement: SQLAlchemy never saw it, so say it here.
                await conn.invalidate()
                if commit and begun:
                    raise ConnectionError("the database connection was lost before the commit")
                return
            try:
                if conn.in_transaction():
                    await (conn.commit() if commit else conn.rollback())
                await (driver.commit() if commit else driver.rollback())
            except BaseException:
                await conn.invalidate()
                raise
        finally:
            try:
                await conn.close()
            finally:
                if self._gate is not None:
                    self._gate.release()


@asynccontextmanager
async def transaction(
    engine: AsyncEngine, gate: asyncio.Semaphore | None = None
) -> AsyncIterator[LazyConnection]:
    """Commit if the block succeeds, roll back if it raises.

    ``gate`` (see :func:`connection_gate`) admits units to the pool first come, first served.
    """
    conn = LazyConnection(engine, gate)
    try:
        yield conn
    except BaseException:
        await conn.finish(commit=False)
        raise
    await conn.finish(commit=True)


def connection_gate(capacity: int) -> asyncio.Semaphore:
    """At most ``capacity`` units hold a connection at once; the others wait in arrival order.

    SQLAlchemy's pool queue is not fair: a connection returned while units wait goes to
    whichever asks next, often a request that just arrived, and a waiter woken too late waits
    again at the back. Under load that starved some requests for several rounds (refresh
    grants on PostgreSQL at c=16: p99 19-38 ms with the pool alone; 10-12 ms behind this gate,
    bench/RESULTS.md). ``asyncio.Semaphore`` hands a released slot to the oldest waiter
    (CPython 3.11.1 and later). Size it to the pool, so that units never queue in the pool
    itself.
    """
    return asyncio.Semaphore(capacity)
