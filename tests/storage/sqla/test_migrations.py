"""Alembic migrations: up, down, up again on every backend, and the models match them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url

from ostiary.storage.sqla.migrate import downgrade, head_revision, upgrade
from ostiary.storage.sqla.tables import metadata
from tests.conftest import TEST_DATABASE_URL, pg_exec

BACKENDS = ["sqlite", *(["postgres"] if TEST_DATABASE_URL else [])]


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (migrations must not share one with other tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    assert TEST_DATABASE_URL
    name = f"ostiary_mig_{secrets.token_hex(4)}"
    pg_exec(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"')
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    pg_exec(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _inspect(url: str, fn: object) -> object:
    import asyncio

    from ostiary.storage.sqla.engine import create_engine as create_async

    async def run() -> object:
        engine = create_async(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    upgrade(empty_database)
    assert _inspect(empty_database, _tables) == set(metadata.tables)
    assert _inspect(empty_database, _revision) == head_revision()
    downgrade(empty_database, "base")
    assert _inspect(empty_database, _tables) == set()
    upgrade(empty_database)
    assert _inspect(empty_database, _tables) == set(metadata.tables)


def test_models_match_migrations(empty_database: str) -> None:
    upgrade(empty_database)
    assert _inspect(empty_database, _diff) == []


def test_head_revision_constant_matches_the_migration_files() -> None:
    from ostiary.storage.sqla.revision import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


async def test_current_revision_without_alembic(empty_database: str) -> None:
    from ostiary.storage.sqla.engine import create_engine
    from ostiary.storage.sqla.revision import HEAD_REVISION, current_revision

    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) is None
        await asyncio.to_thread(upgrade, empty_database)
        assert await current_revision(engine) == HEAD_REVISION
    finally:
        await engine.dispose()
