"""The decision log written off the request path, in batches (issue 13, section 3: "every
decision can go to a decision log"; bench/authzen.py measured the per-decision INSERT at 12 %
of a single evaluation).

A decision is put in a bounded in-process buffer (:meth:`DecisionLogBuffer.offer`); a
background task (:meth:`DecisionLogBuffer.run`, started by the server) writes what it holds
every ``interval`` seconds (100 ms), or as soon as ``batch`` entries are waiting, in batches
(one multi-row INSERT and a transaction each: half of what is held, at least ``batch``),
letting the event loop serve requests between two batches (on SQLite the INSERT runs on the
loop thread: a backlog of 500 decisions written in one go held every request for about 4 ms,
100 for under 1 ms at about 1 µs more per entry), and :meth:`DecisionLogBuffer.close` writes the
rest when the server stops. Entries stay in the buffer until their INSERT has committed, so
:meth:`pending` (what dry-run adds to the rows it reads) includes the batch being written; a
failed write keeps them for the next try (the buffer may then hold up to ``max_entries`` plus
one batch), which writes that batch's entries one at a time: an entry the database refuses on
its own is dropped and counted (``dropped``), and if none goes in the database is taken to be
away and they all wait.

A full buffer (the database cannot keep up, or is away) refuses the entry: the caller writes
it inline, in the request's own transaction, as before this buffer existed, so nothing is
lost and the requests slow down instead (``inline_writes`` counts them). Without a running
buffer (the CLI, a runtime outside the server) every entry is written inline.

What a node holds at a crash (up to ``interval`` seconds of decisions, or more while the
database is away) is lost: the log is an audit aid and dry-run's input, not the decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import structlog

from ostiary.features.policy.models import LogEntry

__all__ = ["DecisionLogBuffer"]

log = structlog.get_logger("ostiary.policy")

Writer = Callable[[Sequence[LogEntry]], Awaitable[None]]


class DecisionLogBuffer:
    def __init__(
        self,
        write: Writer,
        *,
        max_entries: int = 10_000,
        batch: int = 100,
        interval: float = 0.1,
    ) -> None:
        self._write = write
        self._entries: deque[LogEntry] = deque()
        self._max = max(1, max_entries)
        self._batch = max(1, batch)
        self._interval = interval
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one write at a time: the run loop's or close()'s
        self.running = False
        self.written = 0
        self.inline_writes = 0  # entries refused because the buffer was full
        self.failed_writes = 0
        self.dropped = 0  # entries the database refused on their own (never retried)
        self._singly = False  # the last batch failed: try its entries one at a time

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, entry: LogEntry) -> bool:
        """Keep ``entry`` for the next write; False when not running or full (the caller then
        writes it inline)."""
        if not self.running:
            return False
        if len(self._entries) >= self._max:
            self.inline_writes += 1
            return False
        self._entries.append(entry)
        if len(self._entries) >= self._batch:
            self._wake.set()
        return True

    def pending(self, org_id: str) -> list[LogEntry]:
        """The organization's entries not yet committed, newest first."""
        return [e for e in reversed(self._entries) if e.organization_id == org_id]

    async def flush(self) -> int:
        """Write everything held now, one batch (one INSERT) at a time; the count written.
        A failed write raises, and its entries stay for the next try."""
        done = 0
        async with self._lock:
            while self._entries:
                # Half of what is held, and at least ``batch``: with one batch per turn of the
                # loop, a fixed size fell behind when requests added more per turn than it
                # (batches of ten decisions at c=16: the buffer filled and decisions were
                # written inline); half the backlog keeps up with any rate, and the backlog
                # settles at about twice what one turn adds.
                held = len(self._entries)
                count = min(held, max(self._batch, held // 2))
                # islice walks the deque once; indexing it is linear in the index.
                batch = list(itertools.islice(self._entries, count))
                if self._singly:
                    written = await self._write_singly(batch)
                else:
                    try:
                        await self._write(batch)
                    except BaseException:
                        self.failed_writes += 1
                        self._singly = True
                        raise
                    written = count
                for _ in range(count):  # committed (or refused alone): only now out
                    self._entries.popleft()
                done += written
                self.written += written
                if self._entries:
                    # SQLite writes run inline on the loop thread: without a turn between
                    # batches, every request waited for the whole backlog (bench/RESULTS.md).
                    await asyncio.sleep(0)
        return done

    async def _write_singly(self, batch: list[LogEntry]) -> int:
        """After a failed batch, its entries one at a time, so that one the database refuses
        (a value it cannot store) does not hold up the others forever. If none is written the
        database is taken to be away: the error is raised and every entry kept. Otherwise
        the refused ones are dropped and counted (``dropped``), and batches resume."""
        refused: list[LogEntry] = []
        error: Exception | None = None
        for entry in batch:
            try:
                await self._write([entry])
            except Exception as exc:
                refused.append(entry)
                error = exc
        if error is not None and len(refused) == len(batch):
            self.failed_writes += 1
            raise error
        self._singly = False
        if refused:
            self.dropped += len(refused)
            log.warning("decision_log_entries_refused", entries=len(refused))
        return len(batch) - len(refused)

    async def run(self) -> None:
        """Write every ``interval`` seconds, or when a batch is waiting, until cancelled."""
        self.running = True
        try:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                # cancellation that arrives as the wait ends (a batch filling as the server
                # stops), and shutdown then waited for this task forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.flush()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database may blip; the entries wait
                    log.warning("decision_log_write_failed", error=type(exc).__name__)
                    await asyncio.sleep(self._interval)
        finally:
            self.running = False

    async def close(self) -> None:
        """Stop taking entries (later ones are written inline) and write what is held."""
        self.running = False
        try:
            await self.flush()
        except Exception as exc:
            log.warning(
                "decision_log_lost_at_shutdown", entries=len(self), error=type(exc).__name__
            )
