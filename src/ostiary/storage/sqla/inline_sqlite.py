"""SQLite through the standard ``sqlite3`` driver, run inline on the event loop.

SQLAlchemy's asyncio layer drives a DBAPI through coroutines (its aiosqlite dialect awaits
``cursor()``, ``execute()``, ``fetchall()``, ``close()``, ``commit()``). aiosqlite runs each of
those on a worker thread, so a statement costs four cross-thread hand-offs and loop wake-ups;
on one core that was half the CPU of a page view. Against a local WAL database our statements
take microseconds, so here the same coroutines call ``sqlite3`` directly and complete without
suspending: SQLAlchemy's aiosqlite dialect is reused unchanged, only the connection object
differs (registered as the ``sqlite+ostiary_inline`` driver).

The one call that may wait is taking the write lock while another process holds it; see
:func:`ostiary.storage.sqla.engine.execute_waiting` (an ``asyncio.sleep`` loop, never SQLite's
blocking busy handler).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import util
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine.interfaces import DBAPIModule

if TYPE_CHECKING:
    from sqlalchemy.connectors.asyncio import AsyncIODBAPIConnection

__all__ = ["DRIVER", "InlineConnection", "InlineCursor", "InlineSQLiteDialect"]

DRIVER = "ostiary_inline"


class InlineCursor:
    """The coroutine cursor API of aiosqlite over a plain ``sqlite3.Cursor``."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, seq_of_parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """The coroutine connection API of aiosqlite over a plain ``sqlite3.Connection``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The stdlib connection underneath (for pragmas and BEGIN IMMEDIATE, engine.py)."""
        return self._conn

    @property
    def _connection(self) -> sqlite3.Connection:
        # SQLAlchemy's adapter checks this before commit/rollback (aiosqlite's closed marker).
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return InlineCursor(self._conn.execute(sql, () if parameters is None else parameters))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    async def create_function(
        self, name: str, num_params: int, func: Callable[..., Any], **kwargs: Any
    ) -> None:
        self._conn.create_function(name, num_params, func, **kwargs)


class _InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self) -> None:
        # The exception classes and version attributes aiosqlite re-exports come from sqlite3.
        super().__init__(sqlite3, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        # Autocommit at the driver: SQLAlchemy's "begin" event issues BEGIN IMMEDIATE itself.
        kw["isolation_level"] = None
        inline = InlineConnection(sqlite3.connect(*arg, **kw))
        # SQLAlchemy's protocol also asks for __getattr__/__setattr__ passthroughs; the adapter
        # uses only the members InlineConnection has.
        return AsyncAdapt_aiosqlite_connection(self, cast("AsyncIODBAPIConnection", inline))


class InlineSQLiteDialect(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect over :class:`InlineConnection`."""

    driver = DRIVER
    supports_statement_cache = True
    has_terminate = False

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return _InlineDBAPI()

    def retrieve_dbapi_version(self, dbapi: DBAPIModule) -> util.VersionInfo:
        return util.parse_version_string(sqlite3.sqlite_version)


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")
