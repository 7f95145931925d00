"""The SQLite engine: stdlib sqlite3 inline on the loop, WAL, foreign keys, async lock waits."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ostiary.storage.sqla import engine as engine_module
from ostiary.storage.sqla.engine import (
    WAL_AUTOCHECKPOINT_PAGES,
    WalCheckpointer,
    create_engine,
    sqlite_url,
)
from ostiary.storage.sqla.inline_sqlite import DRIVER


def test_every_sqlite_url_form_uses_the_inline_driver(tmp_path: Path) -> None:
    for prefix in ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"):
        assert sqlite_url(f"{prefix}:///{tmp_path}/x.db").drivername == f"sqlite+{DRIVER}"


async def test_connection_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 0
    finally:
        await engine.dispose()


async def test_statements_run_on_the_loop_thread(tmp_path: Path) -> None:
    """No worker thread: a trace callback on the driver sees the loop's thread."""
    import threading

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    seen: set[int] = set()
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection.sqlite  # type: ignore[union-attr]
            raw.set_trace_callback(lambda _sql: seen.add(threading.get_ident()))
            await conn.execute(text("SELECT 1"))
            await conn.commit()
    finally:
        await engine.dispose()
    assert seen == {threading.get_ident()}


async def test_write_lock_held_elsewhere_is_awaited_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    engine = create_engine(f"sqlite:///{db}")
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.commit()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, as the CLI would be
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def writer() -> float:
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.commit()
        return time.monotonic()

    tick_task = asyncio.create_task(ticker())
    write_task = asyncio.create_task(writer())
    await asyncio.sleep(0.3)
    assert not write_task.done()  # still waiting for the lock...
    assert ticks >= 20  # ...while the loop keeps running other work
    released = time.monotonic()
    other.execute("COMMIT")
    finished = await asyncio.wait_for(write_task, 5)
    tick_task.cancel()
    assert finished >= released
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    other.close()
    await engine.dispose()


async def test_write_lock_wait_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "x.db"
    engine = create_engine(f"sqlite:///{db}")
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.commit()
    monkeypatch.setattr(engine_module, "LOCK_WAIT_SECONDS", 0.2)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.connect() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        other.execute("ROLLBACK")
        other.close()
        await engine.dispose()


async def _write_pages(engine: Any, rows: int, commits: int) -> None:
    """``rows`` rows of 1 KiB in ``commits`` transactions (about rows / 4 pages of WAL)."""
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS t (x BLOB)"))
        await conn.commit()
        for _ in range(commits):
            for _ in range(rows // commits):
                await conn.execute(text("INSERT INTO t VALUES (randomblob(1024))"))
            await conn.commit()


async def test_commits_on_the_loop_leave_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        async with engine.connect() as conn:
            pages = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar()
        assert pages == WAL_AUTOCHECKPOINT_PAGES
        # About 1,500 pages: SQLite's default (1,000) would have checkpointed on a commit.
        await _write_pages(engine, 6000, 20)
        assert db.stat().st_size < 1 << 20  # still in the WAL
        checkpointer = WalCheckpointer.for_engine(engine)
        assert checkpointer is not None
        try:
            done = await asyncio.to_thread(checkpointer.checkpoint)
        finally:
            checkpointer.close()
        assert not done.busy
        assert done.wal_frames > 1000
        assert done.checkpointed_frames == done.wal_frames
        assert db.stat().st_size > 6000 * 1024  # the rows are in the database file now
    finally:
        await engine.dispose()


async def test_checkpointer_runs_beside_the_writer_until_cancelled(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    engine = create_engine(f"sqlite:///{db}")
    checkpointer = WalCheckpointer(str(db), interval=0.01)
    task = asyncio.create_task(checkpointer.run_forever())
    try:
        await _write_pages(engine, 3000, 30)
        for _ in range(200):  # it catches up within a few intervals
            if db.stat().st_size > 3000 * 1024:
                break
            await asyncio.sleep(0.01)
        assert db.stat().st_size > 3000 * 1024
        async with engine.connect() as conn:  # and the writer was never refused
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 3000
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.dispose()
    assert checkpointer._conn is None  # closed with the task


def test_only_file_backed_sqlite_gets_a_checkpointer(tmp_path: Path) -> None:
    assert WalCheckpointer.for_engine(create_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    assert WalCheckpointer.for_engine(create_engine("sqlite://")) is None
    assert WalCheckpointer.for_engine(create_engine("sqlite:///:memory:")) is None
    pg = create_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    assert WalCheckpointer.for_engine(pg) is None
