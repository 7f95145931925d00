"""The unit of work: a connection only when a statement runs; commit or roll back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ostiary.storage.sqla.engine import create_engine
from ostiary.storage.sqla.uow import transaction


async def test_a_unit_without_statements_checks_nothing_out(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with transaction(engine) as conn:
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            assert not conn.opened
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with transaction(engine) as conn:
            await conn.execute(text("SELECT 1"))
            assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_commit_on_success_rollback_on_error(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with transaction(engine) as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))

        async def failing_unit() -> None:
            async with transaction(engine) as conn:
                await conn.execute(text("INSERT INTO t VALUES (2)"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await failing_unit()
        async with transaction(engine) as conn:
            rows = (await conn.execute(text("SELECT x FROM t"))).scalars().all()
        assert rows == [1]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_savepoint_rolls_back_alone(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with transaction(engine) as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))

            async def failing_savepoint() -> None:
                async with conn.begin_nested():
                    await conn.execute(text("INSERT INTO t VALUES (2)"))
                    raise RuntimeError("undo the savepoint only")

            with pytest.raises(RuntimeError):
                await failing_savepoint()
        async with transaction(engine) as conn:
            rows = (await conn.execute(text("SELECT x FROM t"))).scalars().all()
        assert rows == [1]
    finally:
        await engine.dispose()
