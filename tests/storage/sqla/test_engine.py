"""The SQLite engine: stdlib sqlite3 inline on the loop, WAL, foreign keys, async lock waits."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ostiary.storage.sqla import engine as engine_module
from ostiary.storage.sqla.engine import (
    WAL_AUTOCHECKPOINT_PAGES,
    ExternalWrites,
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


# ExternalWrites: PRAGMA data_version, skipped while the wal-index header has not moved.

LINUX = os.path.exists("/proc/self/maps")


@pytest.fixture(autouse=True)
def _room_to_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap on mapped -shm files is per process: files other tests left open must not turn
    the mapping off here."""
    monkeypatch.setattr(engine_module, "_MAX_MAPPED_FILES", 10_000)


class Probe:
    """An engine's ExternalWrites and the statements its connection ran (a trace callback)."""

    def __init__(self, engine: Any, writes: ExternalWrites, db: Path) -> None:
        self.engine = engine
        self.writes = writes
        self.db = db
        self.statements: list[str] = []

    async def connect(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            await conn.commit()
            raw = (await conn.get_raw_connection()).driver_connection.sqlite  # type: ignore[union-attr]
        raw.set_trace_callback(self.statements.append)

    def pragmas(self) -> int:
        return sum(1 for sql in self.statements if sql == "PRAGMA data_version")

    def version(self) -> int | None:
        return self.writes.version()


@asynccontextmanager
async def probe(tmp_path: Path, name: str = "x.db") -> AsyncIterator[Probe]:
    db = tmp_path / name
    engine = create_engine(f"sqlite:///{db}")
    p = Probe(engine, ExternalWrites(engine), db)
    await p.connect()
    try:
        yield p
    finally:
        await engine.dispose()


def commit_in_another_process(db: Path, value: int = 1) -> None:
    """What the CLI does: a commit from a separate process, with plain sqlite3."""
    code = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('INSERT INTO t VALUES (?)', (int(sys.argv[2]),))\n"
        "c.commit()\n"
        "c.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db), str(value)], check=True)


def leave_wal_in_another_process(db: Path) -> str:
    code = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], timeout=0)\n"
        "try:\n"
        "    print(c.execute('PRAGMA journal_mode=DELETE').fetchone()[0])\n"
        "except sqlite3.OperationalError as exc:\n"
        "    print(exc)\n"
        "c.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(db)], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def shm_exists(db: Path) -> bool:
    return os.path.exists(f"{db}-shm")


def _shm_locks(db: Path) -> list[str]:
    """This process's POSIX locks on the database's -shm file (/proc/locks)."""
    inode = os.stat(f"{db}-shm").st_ino
    pid = str(os.getpid())
    found = []
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if "->" in fields:
                continue
            if fields[4] == pid and int(fields[5].rsplit(":", 1)[1]) == inode:
                found.append(line)
    return found


@pytest.mark.skipif(not LINUX, reason="the mapping needs /proc/self/maps; elsewhere: the pragma")
async def test_nothing_committed_runs_no_pragma(tmp_path: Path) -> None:
    async with probe(tmp_path) as p:
        first = p.version()
        ran = p.pragmas()
        assert ran == 1
        for _ in range(100):
            assert p.version() == first
        assert p.pragmas() == ran  # no statement at all: the wal-index header did not move
        assert p.writes._view is not None
        # Nor do the PASSIVE checkpoints of WalCheckpointer move it.
        checkpointer = WalCheckpointer(str(p.db))
        try:
            done = checkpointer.checkpoint()
        finally:
            checkpointer.close()
        assert done.checkpointed_frames == done.wal_frames > 0
        assert p.version() == first
        assert p.pragmas() == ran


async def test_a_commit_by_another_process_changes_the_version(tmp_path: Path) -> None:
    async with probe(tmp_path) as p:
        before = p.version()
        assert p.version() == before
        commit_in_another_process(p.db)
        after = p.version()
        assert after is not None and after != before
        assert p.version() == after  # and stays once taken in


async def test_a_commit_by_another_connection_in_this_process_is_seen(tmp_path: Path) -> None:
    """data_version counts another connection of this process as another writer too."""
    async with probe(tmp_path) as p:
        other = sqlite3.connect(p.db, isolation_level=None)
        try:
            seen = {p.version()}
            for i in range(20):
                other.execute("INSERT INTO t VALUES (?)", (i,))
                version = p.version()
                assert version not in seen
                seen.add(version)
        finally:
            other.close()


async def test_our_own_commits_are_not_external_writes(tmp_path: Path) -> None:
    async with probe(tmp_path) as p:
        before = p.version()
        async with p.engine.connect() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.commit()
        assert p.version() == before  # the header moved: one pragma, same value
        ran = p.pragmas()
        assert p.version() == before
        if LINUX:
            assert p.pragmas() == ran


async def test_commits_across_checkpoints_and_wal_resets_are_never_missed(tmp_path: Path) -> None:
    """Every commit is seen, whichever checkpoint (PASSIVE, RESTART, TRUNCATE) ran before it:
    a WAL reset starts mxFrame again from 1 with new salts."""
    async with probe(tmp_path) as p:
        other = sqlite3.connect(p.db, isolation_level=None)
        try:
            last = p.version()
            modes = ["PASSIVE", "RESTART", "TRUNCATE", None]
            for i in range(40):
                mode = modes[i % len(modes)]
                if mode is not None:
                    other.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
                    p.version()  # may move (the header did): not a commit, not required
                    last = p.version()
                other.execute("INSERT INTO t VALUES (?)", (i,))
                version = p.version()
                assert version != last, (i, mode)
                last = version
            commit_in_another_process(p.db)
            assert p.version() != last
        finally:
            other.close()


async def test_many_commits_in_a_row_each_seen(tmp_path: Path) -> None:
    async with probe(tmp_path) as p:
        other = sqlite3.connect(p.db, isolation_level=None)
        try:
            for burst in range(1, 6):
                before = p.version()
                for i in range(burst):
                    other.execute("INSERT INTO t VALUES (?)", (i,))
                assert p.version() != before
        finally:
            other.close()


async def test_a_reopened_connection_maps_again_and_never_repeats_a_value(tmp_path: Path) -> None:
    async with probe(tmp_path) as p:
        before = p.version()
        view = p.writes._view
        await p.engine.dispose()  # the last connection: SQLite deletes the -shm file
        assert p.version() is None  # closed: assume changes, and the mapping is not read
        assert not shm_exists(p.db)
        commit_in_another_process(p.db)  # recreates and deletes -wal and -shm
        p.statements = []
        await p.connect()  # a new connection, a new -shm file
        after = p.version()
        # A fresh connection's pragma starts where the old one's did: never equal anyway.
        assert after is not None and after != before
        if LINUX:
            assert p.writes._view is not None and p.writes._view is not view
            ran = p.pragmas()
            assert p.version() == after
            assert p.pragmas() == ran
        commit_in_another_process(p.db, 2)
        assert p.version() != after


async def test_a_closed_connection_answers_none(tmp_path: Path) -> None:
    async with probe(tmp_path) as p:
        assert p.version() is not None
        raw = p.writes._raw
        assert raw is not None
        raw.close()
        assert p.version() is None
        assert p.version() is None


async def test_an_in_memory_database_runs_the_pragma_every_time() -> None:
    engine = create_engine("sqlite://")
    writes = ExternalWrites(engine)
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection.sqlite  # type: ignore[union-attr]
        statements: list[str] = []
        raw.set_trace_callback(statements.append)
        for _ in range(3):
            assert writes.version() is not None
        assert statements.count("PRAGMA data_version") == 3
        assert writes._view is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize("unmapped", ["no /proc", "not SQLite's file"])
async def test_where_the_file_cannot_be_shown_to_be_sqlites_the_pragma_runs_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unmapped: str
) -> None:
    if unmapped == "no /proc":
        monkeypatch.setattr(engine_module, "_PROC_MAPS", str(tmp_path / "no-such-file"))
    else:
        monkeypatch.setattr(engine_module, "_sqlite_maps", lambda _key: False)
    async with probe(tmp_path) as p:
        for _ in range(3):
            p.version()
        assert p.pragmas() == 3
        assert p.writes._view is None
        other = sqlite3.connect(p.db, isolation_level=None)
        before = p.version()
        other.execute("INSERT INTO t VALUES (1)")
        other.close()
        assert p.version() != before


def test_only_a_wal_file_database_is_mapped(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    journal = sqlite3.connect(db, isolation_level=None)
    try:
        journal.execute("CREATE TABLE t (x INTEGER)")  # rollback journal: no wal-index
        assert engine_module._map_wal_index(journal) is None
    finally:
        journal.close()
    memory = sqlite3.connect(":memory:")
    try:
        assert engine_module._map_wal_index(memory) is None
    finally:
        memory.close()


@pytest.mark.skipif(not LINUX, reason="/proc/self/maps")
def test_a_stale_shm_file_sqlite_does_not_use_is_not_mapped(tmp_path: Path) -> None:
    """In EXCLUSIVE locking mode the wal-index lives in heap memory: a -shm file left beside the
    database is not SQLite's and never moves, so it must not be taken for the wal-index."""
    db = tmp_path / "x.db"
    first = sqlite3.connect(db, isolation_level=None)
    first.execute("PRAGMA journal_mode=WAL")
    first.execute("CREATE TABLE t (x INTEGER)")
    stale = Path(f"{db}-shm").read_bytes()
    first.close()
    Path(f"{db}-shm").write_bytes(stale)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("INSERT INTO t VALUES (1)")
        assert Path(f"{db}-shm").exists()
        assert engine_module._map_wal_index(conn) is None
    finally:
        conn.close()


async def test_a_commit_during_the_pragma_is_seen_by_the_next_call(tmp_path: Path) -> None:
    """The header is read before the pragma: a commit that lands after the pragma took its
    snapshot moves the header away from the one remembered, so the next call runs the pragma
    again. (Read after the pragma, the header would already hold that commit, and the next
    call would answer the pragma's older value: the commit missed.)"""
    async with probe(tmp_path) as p:
        other = sqlite3.connect(p.db, isolation_level=None)
        raw = p.writes._raw
        assert raw is not None
        try:
            p.version()

            def commit_now() -> int:
                other.execute("INSERT INTO t VALUES (0)")
                return 0

            other.execute("INSERT INTO t VALUES (1)")  # the header moved: the pragma will run
            ran = p.pragmas()
            # Commits at every step of the pragma's program, the last ones after its read
            # transaction began (after OP_Transaction), so the pragma does not count those.
            raw.set_progress_handler(commit_now, 1)
            try:
                during = p.version()
            finally:
                raw.set_progress_handler(None, 1)
            assert p.pragmas() == ran + 1
            assert p.version() != during
        finally:
            other.close()


@pytest.mark.skipif(not LINUX, reason="/proc/locks")
async def test_mapping_never_releases_sqlites_locks(tmp_path: Path) -> None:
    """POSIX locks go with any close() of the file by the process: the descriptors the mapping
    opened stay open, so SQLite keeps its -shm locks (the DMS lock that stops another process
    from truncating the file) through every new connection and mapping."""
    async with probe(tmp_path) as p:
        p.version()
        assert p.writes._view is not None
        assert _shm_locks(p.db)  # SQLite's DMS lock, at least
        second = create_engine(f"sqlite:///{p.db}")  # same file: the mapping is shared
        writes = ExternalWrites(second)
        try:
            async with second.connect() as conn:
                await conn.execute(text("SELECT 1"))
            writes.version()
            assert writes._view is p.writes._view
            assert _shm_locks(p.db)
            # What that protects: another process opening the database leaves the file as is.
            before = p.version(), writes.version()
            commit_in_another_process(p.db)
            assert os.stat(f"{p.db}-shm").st_size >= 32768
            assert p.version() != before[0]
            assert writes.version() != before[1]
        finally:
            await second.dispose()
        assert _shm_locks(p.db)


@pytest.mark.skipif(not LINUX, reason="/proc/self/maps")
async def test_descriptors_of_deleted_files_are_closed_at_the_next_mapping(tmp_path: Path) -> None:
    async with probe(tmp_path, "a.db") as p:
        p.version()
        key = next(k for k, e in engine_module._mapped.items() if e.view is p.writes._view)
    assert key in engine_module._mapped  # kept after the last connection closed...
    async with probe(tmp_path, "b.db") as q:
        q.version()
        assert key not in engine_module._mapped  # ...until its file was found unlinked


async def test_another_process_cannot_leave_wal_mode_or_remove_the_shm_file(
    tmp_path: Path,
) -> None:
    """What the mapping relies on while our connection is open (module doc)."""
    async with probe(tmp_path) as p:
        p.version()
        done = leave_wal_in_another_process(p.db)
        assert done in ("database is locked", "wal")
        assert shm_exists(p.db)  # its last close did not delete the file
        async with p.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_a_header_read_while_written_is_not_remembered(tmp_path: Path) -> None:
    """A read that races a write (two halves of different headers) is not a header SQLite
    wrote: were it remembered, a later read giving the same bytes would hide commits."""
    async with probe(tmp_path) as p:
        p.version()
        view = p.writes._view
        if view is None:
            pytest.skip("no mapping on this platform")
        real = view[:48]
        torn = real[:24] + bytes(b ^ 0xFF for b in real[24:])

        class Torn:
            def __getitem__(self, _index: slice) -> bytes:
                return torn

        other = sqlite3.connect(p.db, isolation_level=None)
        other.execute("INSERT INTO t VALUES (1)")  # the header moved: the pragma runs
        other.close()
        p.writes._view = Torn()  # type: ignore[assignment]
        p.version()
        ran = p.pragmas()
        p.version()
        assert p.pragmas() == ran + 1  # nothing remembered: the pragma again


def test_a_torn_or_foreign_header_is_never_taken_as_reference(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        header = Path(f"{db}-shm").read_bytes()[:48]
    finally:
        conn.close()
    assert engine_module._consistent(header)
    for i in range(48):  # any byte changed, as a read half-way through a write could give
        torn = bytearray(header)
        torn[i] ^= 0x01
        assert not engine_module._consistent(bytes(torn)), i
    assert not engine_module._consistent(bytes(48))
