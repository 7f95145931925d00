"""One transaction per unit of work (a request, a CLI command), opened on first use.

A request answered from in-process state alone (a client_credentials grant for a cached client,
an introspection, an account page from the session cache) never checks a connection out of the
pool: :class:`LazyConnection` opens it at the first statement. SQLAlchemy then begins the
transaction (autobegin); the unit commits if the block succeeds and rolls back if it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

__all__ = ["Connection", "LazyConnection", "transaction"]


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


class LazyConnection:
    """An :class:`AsyncConnection` checked out of the pool at the first statement."""

    __slots__ = ("_conn", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    @property
    def opened(self) -> bool:
        return self._conn is not None

    async def connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def execute(
        self,
        statement: Executable,
        parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    ) -> CursorResult[Any]:
        conn = self._conn if self._conn is not None else await self.connection()
        return await conn.execute(statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        conn = await self.connection()
        async with conn.begin_nested():
            yield

    async def finish(self, *, commit: bool) -> None:
        """Commit or roll back and return the connection to the pool (if one was opened)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if commit:
                await conn.commit()
            else:
                await conn.rollback()
        finally:
            await conn.close()


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[LazyConnection]:
    """Commit if the block succeeds, roll back if it raises."""
    conn = LazyConnection(engine)
    try:
        yield conn
    except BaseException:
        await conn.finish(commit=False)
        raise
    await conn.finish(commit=True)
