"""The decision log written in batches off the request path (features/policy/decision_log.py):
a running buffer writes what it holds as one multi-row INSERT per batch, on its interval or as
soon as a batch is waiting; close() writes the rest (the server's shutdown); a full buffer
hands the entry back and it is written inline, in the decision's own transaction; dry-run
replays the entries not written yet too; a failed write keeps its entries for the next try."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from ostiary.features.policy.decision_log import DecisionLogBuffer
from ostiary.features.policy.models import LogEntry
from ostiary.features.policy.service import DecisionEnv
from ostiary.protocol.authzen import Action, Entity, Evaluation
from ostiary.storage.sqla.driver import AsyncpgDriver, SqliteDriver
from ostiary.storage.sqla.policy_repositories import SqlDecisionLogStore
from ostiary.storage.sqla.tables import decision_log

DEADLINE_S = 10.0


async def _member_org(runtime: Any) -> tuple[str, str]:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        await unit.orgs.add_member(org.id, user.id, actor=None)
        await unit.rbac.assign(org.id, ("user", user.id), "member", actor=None)
    return str(org.id), str(user.id)


async def _decide(runtime: Any, org: str, user: str, n: int = 1) -> None:
    ask = Evaluation(Entity("user", user), Action("models:invoke"), Entity("model", "m1"))
    for _ in range(n):
        async with runtime.unit() as unit:
            assert (
                await unit.policies.evaluate(org, ask, DecisionEnv(runtime.clock.now()))
            ).allowed


async def _rows(runtime: Any) -> int:
    async with runtime.unit() as unit:
        return int(
            (await unit.conn.execute(select(func.count()).select_from(decision_log))).scalar_one()
        )


async def _until(condition: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await condition():
        assert loop.time() < deadline, "the buffer never wrote"
        await asyncio.sleep(0.01)


class _Inserts:
    """The INSERT statements into decision_log run on the driver (storage/sqla/driver.py
    ``executemany``: one prepared statement, a parameter row per entry), with how many rows
    each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows_per_statement: list[int] = []
        for kind in (SqliteDriver, AsyncpgDriver):
            monkeypatch.setattr(kind, "executemany", self._counting(kind.executemany))

    def _counting(self, run: Any) -> Any:
        async def executemany(driver: Any, sql: Any, rows: Sequence[Any]) -> None:
            if sql.qmark.lstrip().upper().startswith("INSERT INTO DECISION_LOG"):
                self.rows_per_statement.append(len(rows))
            await run(driver, sql, rows)

        return executemany


@asynccontextmanager
async def _running(buffer: DecisionLogBuffer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(buffer.run())
    await asyncio.sleep(0)  # it has started: offer() now takes entries
    assert buffer.running
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_batch_is_one_insert_written_when_it_is_full(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, user = await _member_org(runtime)
    buffer = DecisionLogBuffer(runtime._write_decisions, batch=5, interval=3600)
    runtime.decision_log_buffer = buffer
    inserts = _Inserts(monkeypatch)
    async with _running(buffer):
        await _decide(runtime, org, user, 4)
        assert await _rows(runtime) == 0 and len(buffer) == 4  # held, not written
        await _decide(runtime, org, user)  # the fifth: a batch is waiting

        async def written() -> bool:
            return await _rows(runtime) == 5

        await _until(written)
        assert len(buffer) == 0 and buffer.written == 5
    assert inserts.rows_per_statement == [5]  # one statement for the five rows


async def test_requests_are_served_between_two_batches_of_a_backlog() -> None:
    """On SQLite a batch's INSERT runs on the loop thread: a backlog is written a batch at a
    time with the loop's turn between two, so that requests do not wait for all of it."""
    turns: list[str] = []

    async def write(entries: Any) -> None:
        turns.append(f"batch of {len(entries)}")

    async def request() -> None:
        turns.append("request")

    buffer = DecisionLogBuffer(write, batch=2, interval=3600)
    buffer.running = True
    now = datetime.now(UTC)
    for _ in range(5):
        assert buffer.offer(LogEntry("o", now, now, {}, True, ""))
    flush = asyncio.create_task(buffer.flush())
    served = asyncio.create_task(request())  # due as soon as the flush gives the loop a turn
    assert await flush == 5
    await served
    assert turns == ["batch of 2", "request", "batch of 2", "batch of 1"]


async def test_the_writer_keeps_up_when_requests_add_more_than_a_batch_each_turn() -> None:
    """Each batch is half of what is held (at least ``batch``): a fixed batch a turn fell
    behind a load that adds more each turn (batches of ten decisions: the buffer filled up and
    decisions went inline), half the backlog keeps up with any rate."""
    sizes: list[int] = []

    async def write(entries: Any) -> None:
        sizes.append(len(entries))

    buffer = DecisionLogBuffer(write, batch=2, max_entries=30, interval=3600)
    buffer.running = True
    now = datetime.now(UTC)
    entry = LogEntry("o", now, now, {}, True, "")
    refused = 0

    async def requests() -> None:
        nonlocal refused
        for _ in range(60):  # three entries every turn of the loop
            refused += sum(not buffer.offer(entry) for _ in range(3))
            await asyncio.sleep(0)

    for _ in range(10):
        assert buffer.offer(entry)
    load = asyncio.create_task(requests())
    written = await buffer.flush()
    await load
    written += await buffer.flush()
    assert refused == 0 and buffer.inline_writes == 0
    assert written == 10 + 180 == sum(sizes)
    assert sizes[0] == 5  # half of the ten held, more than a batch


async def test_the_interval_writes_a_partial_batch(runtime: Any) -> None:
    org, user = await _member_org(runtime)
    buffer = DecisionLogBuffer(runtime._write_decisions, batch=500, interval=0.05)
    runtime.decision_log_buffer = buffer
    async with _running(buffer):
        await _decide(runtime, org, user, 3)

        async def written() -> bool:
            return await _rows(runtime) == 3

        await _until(written)


async def test_close_writes_what_is_held_and_later_entries_go_inline(runtime: Any) -> None:
    org, user = await _member_org(runtime)
    buffer = DecisionLogBuffer(runtime._write_decisions, batch=500, interval=3600)
    runtime.decision_log_buffer = buffer
    async with _running(buffer):
        await _decide(runtime, org, user, 3)
        assert await _rows(runtime) == 0
    await buffer.close()  # the server's shutdown: the task is cancelled, then close()
    assert await _rows(runtime) == 3 and len(buffer) == 0
    await _decide(runtime, org, user)  # not running: written inline, at once
    assert await _rows(runtime) == 4


async def test_a_full_buffer_hands_the_entry_back_and_it_is_written_inline(runtime: Any) -> None:
    org, user = await _member_org(runtime)
    buffer = DecisionLogBuffer(runtime._write_decisions, max_entries=2, interval=3600)
    runtime.decision_log_buffer = buffer
    async with _running(buffer):
        await _decide(runtime, org, user, 2)
        assert await _rows(runtime) == 0 and len(buffer) == 2
        await _decide(runtime, org, user, 3)  # full: each goes inline, nothing is lost
        assert await _rows(runtime) == 3
        assert len(buffer) == 2 and buffer.inline_writes == 3
        await buffer.flush()
    assert await _rows(runtime) == 5


async def test_dry_run_replays_entries_not_written_yet(runtime: Any) -> None:
    org, user = await _member_org(runtime)
    buffer = DecisionLogBuffer(runtime._write_decisions, interval=3600)
    runtime.decision_log_buffer = buffer
    async with _running(buffer):
        await _decide(runtime, org, user, 2)
        assert await _rows(runtime) == 0
        async with runtime.unit() as unit:
            replayed, changes = await unit.policies.dry_run(
                org, 'forbid(principal, action, resource == model::"m1");'
            )
        assert replayed == 2 and len(changes) == 2
        assert all(c.logged.id == 0 and c.logged.decision and not c.now_allowed for c in changes)


async def test_a_failed_write_keeps_its_entries_for_the_next_try(runtime: Any) -> None:
    org, _ = await _member_org(runtime)
    attempts: list[int] = []

    async def write_in_unit(entries: Sequence[LogEntry]) -> None:
        async with runtime.unit() as unit:
            await SqlDecisionLogStore(unit.conn).append_many(entries)
            if len(attempts) == 0:
                attempts.append(len(entries))
                raise ConnectionError("the database went away")  # rolls the INSERT back
            attempts.append(len(entries))

    buffer = DecisionLogBuffer(write_in_unit, interval=3600)
    now = runtime.clock.now()
    buffer.running = True
    for n in range(3):
        assert buffer.offer(LogEntry(org, now, now, {"n": n}, True, "granted"))
    with pytest.raises(ConnectionError):
        await buffer.flush()
    assert len(buffer) == 3 and buffer.failed_writes == 1
    assert await _rows(runtime) == 0
    assert await buffer.flush() == 3  # the next try: one at a time, all go in
    assert attempts == [3, 1, 1, 1] and len(buffer) == 0 and buffer.dropped == 0
    assert await _rows(runtime) == 3


async def test_an_entry_the_database_refuses_does_not_hold_up_the_others(runtime: Any) -> None:
    org, _ = await _member_org(runtime)
    buffer = DecisionLogBuffer(runtime._write_decisions, interval=3600)
    now = runtime.clock.now()
    buffer.running = True
    good = [LogEntry(org, now, now, {"n": n}, True, "granted") for n in range(3)]
    bad = LogEntry(org, now, now, {"not json": {1, 2}}, True, "granted")  # a set: refused
    for entry in (good[0], bad, good[1], good[2]):
        assert buffer.offer(entry)
    with pytest.raises(Exception, match="set"):
        await buffer.flush()  # the batch fails as a whole
    assert await _rows(runtime) == 0 and len(buffer) == 4
    assert await buffer.flush() == 3  # then one at a time: the refused one is dropped
    assert buffer.dropped == 1 and len(buffer) == 0
    assert await _rows(runtime) == 3
    assert buffer.offer(good[0]) and await buffer.flush() == 1  # batches again


async def test_a_stop_that_comes_as_a_batch_fills_still_stops_the_writer() -> None:
    """The server's shutdown cancels the writer; a batch filling in the same loop turn must not
    swallow that cancellation (Python 3.11's ``asyncio.wait_for`` returns the finished inner
    result instead of raising, and the loop would then wait forever for the writer: a worker
    that never stops)."""
    written: list[int] = []

    async def write(entries: Sequence[LogEntry]) -> None:
        written.append(len(entries))

    buffer = DecisionLogBuffer(write, batch=1, interval=3600)
    task = asyncio.create_task(buffer.run())
    await asyncio.sleep(0)
    now = datetime.now(UTC)
    entry = LogEntry("o", now, now, {}, True, "")
    assert buffer.offer(entry)  # a full batch: the writer is woken in this turn...
    task.cancel()  # ...and stopped in the same one
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(DEADLINE_S):
            await task
    assert task.cancelled()
