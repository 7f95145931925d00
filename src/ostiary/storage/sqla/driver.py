"""The unit of work's transaction on the database driver, and statements run on it directly.

A unit of work (uow.py) begins its transaction on the driver connection under SQLAlchemy's
pooled connection: ``BEGIN IMMEDIATE`` on SQLite (the write lock up front, see engine.py),
``BEGIN`` on PostgreSQL through asyncpg. SQLAlchemy statements in the unit run inside that
transaction (on SQLite SQLAlchemy's own "begin" finds it open; on PostgreSQL the unit's
connections are in SQLAlchemy's AUTOCOMMIT mode, so it never starts one of its own), and the
unit commits or rolls it back on the driver.

That lets a repository run a hot statement on the driver itself (:meth:`Driver.fetchone`,
:meth:`Driver.execute`) in the same transaction. SQLAlchemy's execution path (compiled-cache
lookup, execution context, parameter and result processing, the greenlet hop of its asyncio
layer) cost 220 µs of CPU per refresh grant on SQLite and 280 µs on PostgreSQL for four
statements the drivers run in 40 and 190 µs (bench/RESULTS.md). Only the refresh grant's
statements and the decision log's batch INSERT (policy_repositories.py) take this path;
everything else stays on SQLAlchemy Core. On PostgreSQL the grant's
spend-and-successor is one statement (oauth_repositories.py), and with the read before it
runs outside a transaction (uow.py, ``standalone``): two round trips per grant.

Values cross in each database's own representation, as SQLAlchemy stores them
(storage/sqla/tables.py): on SQLite, ``UtcDateTime`` is naive UTC text in SQLAlchemy's
``YYYY-MM-DD HH:MM:SS.ffffff`` format and JSON is text; on PostgreSQL (asyncpg), timestamps are
aware datetimes and JSON arrives decoded (SQLAlchemy's codec on the connection).
:func:`row_reader` and :func:`row_writer` convert by each column's declared type, so the two
paths read and write the same rows.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import JSON, Table
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ostiary.storage.sqla.engine import execute_waiting
from ostiary.storage.sqla.tables import UtcDateTime

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

__all__ = [
    "AsyncpgDriver",
    "Driver",
    "Reader",
    "Sql",
    "SqliteDriver",
    "Writer",
    "driver_of",
    "row_reader",
    "row_writer",
]

_QMARK = sqlite_dialect(paramstyle="qmark")
# SqliteDriver.timestamp: "YYYY-MM-DD HH:MM:SS" by (second, minute, hour, day, month, year).
_seconds: dict[tuple[int, int, int, int, int, int], str] = {}


class Sql:
    """A SQLAlchemy Core statement compiled once: its ``?`` text for sqlite3 and ``$n`` text for
    asyncpg, with positional parameters in the order ``params`` names (checked).

    The SQL is SQLAlchemy's rendering of our tables (plain SELECT/INSERT/UPDATE, the same on
    both databases), so it cannot drift from tables.py.
    """

    __slots__ = ("numbered", "qmark")

    def __init__(self, statement: ClauseElement, params: tuple[str, ...]) -> None:
        compiled = statement.compile(dialect=_QMARK)
        assert isinstance(compiled, SQLCompiler)
        order = tuple(compiled.positiontup or ())
        if order != params:
            raise ValueError(f"the statement takes {order}, not {params}")
        self._set(str(compiled))

    @classmethod
    def text(cls, qmark: str, params: tuple[str, ...]) -> Sql:
        """A statement SQLAlchemy cannot render for both drivers (a PostgreSQL-only one),
        written with one ``?`` per name in ``params`` (checked by count)."""
        if qmark.count("?") != len(params):
            raise ValueError(f"{qmark.count('?')} placeholders for {len(params)} parameters")
        sql = cls.__new__(cls)
        sql._set(qmark)
        return sql

    def _set(self, qmark: str) -> None:
        self.qmark = qmark
        counter = iter(range(1, qmark.count("?") + 1))
        self.numbered = re.sub(r"\?", lambda _m: f"${next(counter)}", qmark)


class Driver(Protocol):
    """A transaction on one driver connection (see the module doc)."""

    @property
    def name(self) -> Literal["sqlite", "postgresql"]: ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def closed(self) -> bool:
        """The connection is gone (the server ended it, the network broke)."""
        ...

    async def begin(self) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def fetchone(self, sql: Sql, params: Sequence[Any]) -> Sequence[Any] | None:
        """The first row of a query, in the database's representation (see row_reader)."""
        ...

    async def execute(self, sql: Sql, params: Sequence[Any]) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: Sql, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per parameter row (sqlite3's and asyncpg's executemany)."""
        ...

    @staticmethod
    def timestamp(value: datetime) -> Any:
        """An aware datetime as the database stores a ``UtcDateTime``."""
        ...

    @staticmethod
    def datetime_of(value: Any) -> datetime | None:
        """A stored ``UtcDateTime`` as an aware UTC datetime."""
        ...

    @staticmethod
    def json_of(value: Any) -> Any:
        """A stored JSON value, decoded."""
        ...


class SqliteDriver:
    """``sqlite3`` on the loop thread (engine.py): each call completes without suspending."""

    __slots__ = ("_raw",)
    name: Literal["sqlite"] = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    @property
    def closed(self) -> bool:
        return False  # a local file: nothing can end it from outside

    async def begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting (without blocking the loop) while another process
        writes (engine.py)."""
        await execute_waiting(self._raw, "BEGIN IMMEDIATE")

    async def commit(self) -> None:
        if self._raw.in_transaction:
            self._raw.commit()

    async def rollback(self) -> None:
        if self._raw.in_transaction:
            self._raw.rollback()

    async def fetchone(self, sql: Sql, params: Sequence[Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self._raw.execute(sql.qmark, params).fetchone()
        return row

    async def execute(self, sql: Sql, params: Sequence[Any]) -> int:
        return self._raw.execute(sql.qmark, params).rowcount

    async def executemany(self, sql: Sql, rows: Sequence[Sequence[Any]]) -> None:
        self._raw.executemany(sql.qmark, rows)

    @staticmethod
    def timestamp(value: datetime) -> Any:
        # SQLAlchemy's SQLite DATETIME storage format, ``YYYY-MM-DD HH:MM:SS.ffffff`` (year
        # zero-padded, microseconds always): isoformat writes it at a tenth of strftime's cost.
        if value.tzinfo is UTC:  # what the clock gives: the text up to the "+00:00" offset
            # The text of whole seconds is kept (a few: a row's times alternate between "now"
            # and an expiry): timestamps written together fall in the same seconds, and
            # finding one costs about half of isoformat (0.47 against 0.91 µs a stamp).
            key = (value.second, value.minute, value.hour, value.day, value.month, value.year)
            second = _seconds.get(key)
            if second is None:
                if len(_seconds) >= 16:
                    _seconds.clear()
                second = _seconds[key] = value.isoformat(" ", "seconds")[:19]
            return f"{second}.{value.microsecond:06d}"
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    @staticmethod
    def datetime_of(value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

    @staticmethod
    def json_of(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value


class AsyncpgDriver:
    """asyncpg's connection under SQLAlchemy's adapter (statements prepared and cached by
    asyncpg, as SQLAlchemy's own path does)."""

    __slots__ = ("_conn",)
    name: Literal["postgresql"] = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        return bool(self._conn.is_in_transaction())

    @property
    def closed(self) -> bool:
        return bool(self._conn.is_closed())

    async def begin(self) -> None:
        await self._conn.execute("BEGIN")

    async def commit(self) -> None:
        if self.in_transaction:
            await self._conn.execute("COMMIT")

    async def rollback(self) -> None:
        if self.in_transaction:
            await self._conn.execute("ROLLBACK")

    async def fetchone(self, sql: Sql, params: Sequence[Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self._conn.fetchrow(sql.numbered, *params)
        return row

    async def execute(self, sql: Sql, params: Sequence[Any]) -> int:
        status: str = await self._conn.execute(sql.numbered, *params)
        count = status.rpartition(" ")[2]  # "UPDATE 1", "INSERT 0 1", "DELETE 3"
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: Sql, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql.numbered, rows)

    @staticmethod
    def timestamp(value: datetime) -> Any:
        return value.astimezone(UTC)

    @staticmethod
    def datetime_of(value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @staticmethod
    def json_of(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value


async def driver_of(conn: AsyncConnection) -> Driver:
    """The driver connection under a pooled SQLAlchemy connection."""
    driver_connection = (await conn.get_raw_connection()).driver_connection
    if driver_connection is None:
        raise ValueError("the pooled connection has no driver connection")
    if conn.dialect.name == "sqlite":
        return SqliteDriver(driver_connection.sqlite)  # an InlineConnection (inline_sqlite.py)
    if conn.dialect.driver == "asyncpg":
        return AsyncpgDriver(driver_connection)
    raise ValueError(f"no driver transaction for {conn.dialect.name}+{conn.dialect.driver}")


def _identity(value: Any) -> Any:
    return value


Reader = Callable[[Sequence[Any]], dict[str, Any]]
Writer = Callable[[Any], list[Any]]


def row_reader(table: Table, driver: Driver) -> Reader:
    """Turns a row of ``table``'s columns (in declaration order) into a dict of Python values."""
    return _reader(table, type(driver))


def row_writer(table: Table, driver: Driver) -> Writer:
    """The parameters for an INSERT of all of ``table``'s columns, from an object's attributes."""
    return _writer(table, type(driver))


@functools.cache
def _reader(table: Table, kind: type[Driver]) -> Reader:
    pairs: list[tuple[str, Callable[[Any], Any]]] = []
    for column in table.columns:
        if isinstance(column.type, UtcDateTime):
            pairs.append((column.name, kind.datetime_of))
        elif isinstance(column.type, JSON):
            pairs.append((column.name, kind.json_of))
        else:
            pairs.append((column.name, _identity))

    def read(row: Sequence[Any]) -> dict[str, Any]:
        return {name: convert(value) for (name, convert), value in zip(pairs, row, strict=True)}

    return read


@functools.cache
def _writer(table: Table, kind: type[Driver]) -> Writer:
    def timestamp(value: datetime | None) -> Any:
        return None if value is None else kind.timestamp(value)

    pairs: list[tuple[str, Callable[[Any], Any]]] = []
    for column in table.columns:
        if isinstance(column.type, UtcDateTime):
            pairs.append((column.name, timestamp))
        elif isinstance(column.type, JSON):
            pairs.append((column.name, json.dumps))
        else:
            pairs.append((column.name, _identity))

    def write(record: Any) -> list[Any]:
        return [convert(getattr(record, name)) for name, convert in pairs]

    return write
