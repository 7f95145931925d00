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

Other processes' commits (``ExternalWrites``): a SQLite server learns that the CLI committed
from ``PRAGMA data_version`` (https://sqlite.org/pragma.html#pragma_data_version), read before
every hot request. The pragma starts and ends a read transaction, which takes and releases a WAL
read lock with ``fcntl`` calls: 4-9 us a call here. In WAL mode every process maps the same
wal-index (the ``-shm`` file), and SQLite's own test for "another connection committed" is a
comparison of its first 48 bytes, the wal-index header, with the copy it read last time (wal.c,
``walIndexTryHdr``; the pragma's value moves when that comparison finds a difference). So
``ExternalWrites`` maps those 48 bytes read-only and runs the pragma only when they differ from
the ones read just *before* its last pragma; otherwise it answers the value that pragma gave,
with no system call. Why no commit by another connection can be missed
(https://sqlite.org/walformat.html, "The WAL-Index Header" and "The WAL-Index File Format"):

- Every commit, by any connection in any process, rewrites the header: ``iChange`` incremented,
  ``mxFrame`` (the last committed frame of the WAL) moved forward, ``aFrameCksum`` (the running
  checksum of the WAL up to that frame) and a checksum over the header. A WAL reset (after a
  checkpoint) increments salt-1 and draws a new salt-2. So equal bytes mean the same WAL
  generation ending at the same frame with the same running checksum, and the same ``iChange``:
  the same committed state. A writer writes the second copy of the header, then the first; a
  commit has written the first copy before it returns, so a request that starts after the
  commit returned reads the new bytes.
- The bytes are read before the pragma: a commit that lands between the two makes the next
  comparison differ (one more pragma), never an answer that misses it. A torn read (the header
  being written while read) only makes bytes differ; and a header is remembered only if it is
  one SQLite would take for consistent (``isInit``, format version 3007000, checksum), so a torn
  read never becomes the reference (checked when it is first found unchanged, so that a
  connection whose own commits move the header each request does not pay for it).
- The mapped file must be the one SQLite uses for this very connection. It is mapped only when
  the connection's ``journal_mode`` is ``wal``, the database is a file (not ``:memory:``), and
  ``/proc/self/maps`` shows SQLite's own read-write shared mapping of that same file (device and
  inode) in this process: that excludes a stale file, heap-memory wal-indexes (EXCLUSIVE locking
  mode, https://sqlite.org/wal.html#noshm), read-only ``-shm`` files and builds that put the file
  elsewhere. Anything else (no ``/proc``, no ``mmap``, another platform) runs the pragma every
  time, as before.
- While the connection is open SQLite holds a shared lock on the database file and the ``-shm``
  file's DMS lock, so no other process can leave WAL mode, delete the ``-shm`` file or truncate
  it (the DMS section of walformat.html; checked in tests). So the mapping is read only after
  checking, without a system call, that the connection is still open; a closed connection
  answers None ("assume changes") as before, and a new connection maps again and gives values
  that never equal an older connection's (the pragma restarts at the same number on each new
  connection).
- POSIX advisory locks belong to the process and *any* ``close()`` of a file drops all of them
  (https://sqlite.org/howtocorrupt.html, "Posix advisory locks canceled by a separate thread
  doing close()"). Closing our descriptor of the ``-shm`` file would silently release SQLite's
  locks on it (a second writer, a truncation under our mapping). So the descriptors stay open for
  the life of the process, one per ``-shm`` file (64 at most), and are closed only once the file
  is unlinked: SQLite deletes it only when the last connection of every process closes, after
  which no connection holds a lock on it.
- What still costs a pragma: any commit, our own included (its value does not move then), and a
  RESTART or TRUNCATE checkpoint; not the PASSIVE checkpoints of ``WalCheckpointer``, which
  leave the header alone. A pragma that finds nothing new costs what it did before.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import struct
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

try:
    import mmap
except ImportError:  # pragma: no cover - a platform without mmap runs the pragma every time
    _CAN_MAP = False
else:
    _CAN_MAP = True

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


# The wal-index header (https://sqlite.org/walformat.html): its first copy, the one every reader
# reads first and every writer writes last, is the first 48 bytes of the -shm file.
_HEADER_BYTES = 48
_WAL_INDEX_VERSION = 3007000
_MAX_MAPPED_FILES = 64
_PROC_MAPS = "/proc/self/maps"
_HEADER_WORDS = struct.Struct("=12I")  # native byte order, as SQLite writes it


class _MappedFile(NamedTuple):
    fd: int  # never closed while the file exists (module doc: POSIX locks)
    view: mmap.mmap | None  # None: kept open only so as not to close it


# -shm files this process mapped, by (st_dev, st_ino); shared by every engine of the process.
_mapped: dict[tuple[int, int], _MappedFile] = {}
_mapped_lock = threading.Lock()
# Descriptors of a file replaced while it was being mapped, which another entry already holds.
_spare_fds: list[int] = []


def _consistent(header: bytes) -> bool:
    """Whether ``header`` is one SQLite would take as read whole: initialized, of the documented
    format version, and matching its checksum (wal.c ``walChecksumBytes``: native-order 32-bit
    words, two running sums)."""
    words = _HEADER_WORDS.unpack(header)
    if words[0] != _WAL_INDEX_VERSION or header[12] != 1:
        return False
    s1 = s2 = 0
    for i in range(0, 10, 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return (s1, s2) == (words[10], words[11])


def _sqlite_maps(key: tuple[int, int]) -> bool:
    """Whether this process has a read-write shared mapping of the file ``key`` at offset 0:
    SQLite's own wal-index (ours is read-only)."""
    device = f"{os.major(key[0]):02x}:{os.minor(key[0]):02x}"
    with open(_PROC_MAPS, encoding="ascii", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if (
                len(fields) >= 5
                and fields[1] == "rw-s"
                and int(fields[2], 16) == 0
                and fields[3] == device
                and fields[4] == str(key[1])
            ):
                return True
    return False


def _forget_unlinked() -> None:
    """Close the descriptors of -shm files that no longer exist (module doc); holds the lock."""
    for key, entry in list(_mapped.items()):
        if os.fstat(entry.fd).st_nlink == 0:
            if entry.view is not None:
                entry.view.close()
            os.close(entry.fd)
            del _mapped[key]


def _map_wal_index(raw: sqlite3.Connection) -> mmap.mmap | None:
    """The wal-index header of ``raw``'s database, mapped read-only, if it can be shown to be
    the one SQLite uses for it (module doc); None otherwise."""
    if not _CAN_MAP or not os.path.exists(_PROC_MAPS):
        return None
    mode = raw.execute("PRAGMA journal_mode").fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        return None
    path = next((row[2] for row in raw.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path:  # in memory, or a temporary database
        return None
    shm = f"{path}-shm"
    with _mapped_lock:
        _forget_unlinked()
        try:
            st = os.stat(shm)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        if not _sqlite_maps(key):
            return None
        known = _mapped.get(key)
        if known is not None:
            return known.view
        if len(_mapped) >= _MAX_MAPPED_FILES:
            return None
        try:
            fd = os.open(shm, os.O_RDONLY)
        except OSError:
            return None
        # From here on the descriptor is kept, whatever happens (module doc).
        st = os.fstat(fd)
        opened = (st.st_dev, st.st_ino)
        if opened != key:  # replaced since the stat above: not the file SQLite maps
            if opened in _mapped:
                _spare_fds.append(fd)
            else:
                _mapped[opened] = _MappedFile(fd, None)
            return None
        _mapped[key] = _MappedFile(fd, None)
        if st.st_size < _HEADER_BYTES:
            return None
        view = mmap.mmap(fd, _HEADER_BYTES, access=mmap.ACCESS_READ)
        _mapped[key] = _MappedFile(fd, view)
        return view


class ExternalWrites:
    """The ``PRAGMA data_version`` of this process's SQLite connection, read only when the
    wal-index header moved (module doc).

    The value changes only when *another* connection (the CLI, another process) commits
    (https://sqlite.org/pragma.html#pragma_data_version), so comparing it with the value seen
    at the last catch-up tells whether in-process state (caches, the revocation set) may be
    behind the database. The pragma is read from the raw connection without a pool checkout,
    which is harmless for a read-only pragma (all statements run on the loop thread, so none
    runs concurrently with it). Values from a later connection never equal an earlier
    connection's: each connection's pragma starts at the same number.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._raw: sqlite3.Connection | None = None
        self._connections = 0
        self._view: mmap.mmap | None = None
        self._map_tried = False  # whether mapping was tried for the current connection
        # The header read just before the pragma that gave ``_seen``: ``_unchecked`` until it
        # is first found unchanged and checked whole (``_consistent``), then ``_header``.
        self._unchecked: bytes | None = None
        self._header: bytes | None = None
        self._seen = 0
        event.listen(engine.sync_engine, "connect", self._attach)

    def _attach(self, dbapi_connection: Any, _record: Any) -> None:
        self._raw = _raw(dbapi_connection)
        self._connections += 1
        self._view = None
        self._map_tried = False
        self._unchecked = self._header = None

    def version(self) -> int | None:
        """None before the first connection (or after it closed): assume changes."""
        raw = self._raw
        if raw is None:
            return None
        try:
            # Raises on a closed connection, whose -shm file may be gone or truncated: then
            # the mapping must not be read (module doc). No system call.
            raw.in_transaction  # noqa: B018
        except sqlite3.Error:
            self._raw = None
            return None
        view = self._view
        if view is None:
            return self._read(raw, None)
        try:
            header = view[:_HEADER_BYTES]
        except ValueError:  # closed: its file was found unlinked (``_forget_unlinked``)
            self._view = None
            return self._read(raw, None)
        if header == self._header:
            return self._seen
        if header == self._unchecked and _consistent(header):
            self._header = header
            return self._seen
        return self._read(raw, header)

    def _read(self, raw: sqlite3.Connection, header: bytes | None) -> int | None:
        """The pragma; ``header`` was read before it (module doc)."""
        self._unchecked = self._header = None
        if not self._map_tried:
            try:
                self._view = _map_wal_index(raw)
            except sqlite3.Error:  # busy, say: the pragma below decides; try again next time
                pass
            except (OSError, ValueError) as exc:
                log.warning("wal_index_not_mapped", error=str(exc))
                self._map_tried = True
            else:
                self._map_tried = True
            if self._view is not None:
                header = self._view[:_HEADER_BYTES]
        try:
            row = raw.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            self._raw = None
            return None
        # Distinct per connection: the count of connections above the pragma's 32 bits.
        self._seen = (self._connections << 32) | (int(row[0]) & 0xFFFFFFFF)
        self._unchecked = header
        return self._seen


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
