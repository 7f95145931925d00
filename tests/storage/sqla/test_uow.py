"""The unit of work: a connection only when a statement runs; commit or roll back."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ostiary.storage.sqla import engine as engine_module
from ostiary.storage.sqla.engine import create_engine
from ostiary.storage.sqla.uow import connection_gate, transaction


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A SQLite engine with one table ``t(x)``."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    async with transaction(engine) as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    await engine.dispose()


async def _rows(engine: AsyncEngine) -> list[int]:
    async with transaction(engine) as conn:
        return list((await conn.execute(text("SELECT x FROM t ORDER BY x"))).scalars())


def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.pool.checkedout())  # type: ignore[attr-defined]


async def test_a_unit_without_statements_checks_nothing_out(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        assert _checked_out(engine) == 0
        assert not conn.opened
    async with transaction(engine) as conn:
        await conn.execute(text("SELECT 1"))
        assert _checked_out(engine) == 1
    assert _checked_out(engine) == 0


async def test_commit_on_success_rollback_on_error(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await conn.execute(text("INSERT INTO t VALUES (1)"))

    async def failing_unit() -> None:
        async with transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await failing_unit()
    assert await _rows(engine) == [1]
    assert _checked_out(engine) == 0


async def test_savepoint_rolls_back_alone(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await conn.execute(text("INSERT INTO t VALUES (1)"))

        async def failing_savepoint() -> None:
            async with conn.begin_nested():
                await conn.execute(text("INSERT INTO t VALUES (2)"))
                raise RuntimeError("undo the savepoint only")

        with pytest.raises(RuntimeError):
            await failing_savepoint()
    assert await _rows(engine) == [1]


async def _fairness_order(engine: AsyncEngine, gate: asyncio.Semaphore | None) -> list[str]:
    """Unit "a" waits for the only connection; "b" arrives (is scheduled) before it is freed."""
    order: list[str] = []

    async def unit(name: str) -> None:
        async with transaction(engine, gate) as conn:
            await conn.execute(text("SELECT 1"))
            order.append(name)

    holder = transaction(engine, gate)
    conn = await holder.__aenter__()
    await conn.execute(text("SELECT 1"))
    a = asyncio.create_task(unit("a"))
    await asyncio.sleep(0.01)  # "a" is waiting now
    b = asyncio.create_task(unit("b"))  # scheduled, not yet run
    await holder.__aexit__(None, None, None)  # frees the connection without suspending
    await asyncio.wait_for(asyncio.gather(a, b), 5)
    return order


async def test_units_get_connections_first_come_first_served(engine: AsyncEngine) -> None:
    assert await _fairness_order(engine, connection_gate(1)) == ["a", "b"]
    # SQLAlchemy's pool alone hands the freed connection to whoever asks next: the newcomer.
    assert await _fairness_order(engine, None) == ["b", "a"]
    assert _checked_out(engine) == 0


async def test_a_unit_waits_for_another_writer_within_the_bound(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's own BEGIN IMMEDIATE (driver.py) waits like SQLAlchemy's hook does."""
    monkeypatch.setattr(engine_module, "LOCK_WAIT_SECONDS", 0.2)
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            await _rows(engine)
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await _rows(engine) == []
    assert _checked_out(engine) == 0
