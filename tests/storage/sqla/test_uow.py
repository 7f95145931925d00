"""The unit of work: a connection only when a statement runs; commit or roll back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ostiary.storage.sqla.engine import create_engine
from ostiary.storage.sqla.uow import transaction


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
