"""Shared fixtures: backends (SQLite always; PostgreSQL + Redis when configured), settings,
runtime, and an in-process HTTP client.

``OSTIARY_TEST_DATABASE_URL`` / ``OSTIARY_TEST_REDIS_URL`` add the ``postgres`` backend. When they
are set but the services are unreachable, the tests fail: they never skip silently.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.engine import make_url

from ostiary.config import Settings
from ostiary.features.clock import FrozenClock
from ostiary.storage.sqla.migrate import upgrade
from ostiary.storage.sqla.tables import metadata
from tests.redis_lease import IN_PROCESS_INDEXES, lease_redis_database
from tests.shared_routes import share_route_state

T = TypeVar("T")
TEST_DATABASE_URL = os.environ.get("OSTIARY_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("OSTIARY_TEST_REDIS_URL")
BACKENDS = ["sqlite", *(["postgres"] if TEST_DATABASE_URL else [])]


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    redis_url: str | None


def _pg_admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking setup (which may call ``asyncio.run``) outside any running event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


def pg_exec(url: str, *statements: str) -> None:
    in_thread(asyncio.run, _pg_exec(url, *statements))


async def _pg_exec(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


_RSA_POOL_SIZE = 8


@pytest.fixture(scope="session", autouse=True)
def pooled_rsa_keys() -> Iterator[None]:
    """Hand out RSA signing keys from a small pool generated once per test process.

    Every server start now creates an RS256 key beside the ES256 and EdDSA ones, and an
    RSA key takes a tenth of a second or more of CPU to generate: across the suite's per-test
    databases that would be minutes. The keys are real and distinct within a test (eight in
    turn; no test makes more than eight RS256 keys in one database, which would collide on
    kid). Servers started by the e2e tests are separate processes and generate their own.
    """
    from ostiary.features.keys import service
    from ostiary.protocol.jose import generate_private_key

    pool: list[Any] = []
    turn = iter(range(1 << 62))

    def pooled(alg: Any) -> Any:
        if alg != "RS256":
            return generate_private_key(alg)
        index = next(turn) % _RSA_POOL_SIZE
        if index == len(pool):
            pool.append(generate_private_key(alg))
        return pool[index]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "generate_private_key", pooled)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_dummy_hashes() -> Iterator[None]:
    """One dummy password hash per hashing parameters in a test process, not one per hasher.

    ``PasswordHasher`` hashes a dummy password when built, so that a sign-in as an unknown
    account does an argon2id verification like any other (constant work). A server builds one
    hasher; the suite builds one per app or runtime, thousands, each a full argon2id hash
    (19 MiB, t=2). Hashes made while a hasher is being built are kept per (password,
    parameters) and reused: each hasher still holds a real hash of the dummy at its own
    parameters, and every other hash (users' passwords) is made fresh.
    """
    import threading

    from ostiary.features.accounts.passwords import PasswordHasher

    build = PasswordHasher.__init__
    hash_sync = PasswordHasher._hash_sync
    building = threading.local()
    made: dict[tuple[Any, ...], str] = {}

    def init(self: PasswordHasher, *args: Any, **kwargs: Any) -> None:
        building.active = True
        try:
            build(self, *args, **kwargs)
        finally:
            building.active = False

    def hash_once(self: PasswordHasher, password: str) -> str:
        if not getattr(building, "active", False):
            return hash_sync(self, password)
        argon = self._argon
        key = (password, self._opslimit, self._memlimit, argon.parallelism, argon.hash_len)
        if key not in made:
            made[key] = hash_sync(self, password)
        return made[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PasswordHasher, "__init__", init)
        patch.setattr(PasswordHasher, "_hash_sync", hash_once)
        yield


@pytest.fixture(scope="session", autouse=True)
def shared_route_state() -> Iterator[None]:
    """FastAPI's per-app route state built once per test process (tests/shared_routes.py):
    the suite builds an app for nearly every test, and rebuilding that state on each app's
    first request was about half of the suite's time."""
    with share_route_state():
        yield


@dataclass(frozen=True)
class PostgresDatabase:
    """This test process's migrated database and the statements that empty it."""

    url: str
    reset: str


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase | None]:
    """A fresh, migrated PostgreSQL database for this test process; dropped at the end."""
    if not TEST_DATABASE_URL:
        yield None
        return
    name = f"ostiary_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        pg_exec(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        pytest.fail(f"OSTIARY_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}")
    url = make_url(TEST_DATABASE_URL).set(database=name)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    rendered = url.render_as_string(hide_password=False)
    in_thread(upgrade, rendered)
    tables, sequences = in_thread(asyncio.run, _pg_catalog(rendered))
    # The reset empties the tables the metadata knows; a table only a migration knows would
    # carry rows from one test to the next.
    assert tables == set(metadata.tables), tables ^ set(metadata.tables)
    yield PostgresDatabase(rendered, _reset_statements(sequences))
    pg_exec(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(postgres_database: PostgresDatabase | None) -> str | None:
    return postgres_database.url if postgres_database else None


async def _pg_catalog(url: str) -> tuple[set[str], list[str]]:
    """The tables (but Alembic's) and the sequences of the database at ``url``."""
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_dsn(url), timeout=10)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename <> 'alembic_version'"
        )
        sequences = await conn.fetch(
            "SELECT quote_ident(sequence_schema) || '.' || quote_ident(sequence_name) AS name"
            " FROM information_schema.sequences ORDER BY 1"
        )
    finally:
        await conn.close()
    return {row["tablename"] for row in tables}, [row["name"] for row in sequences]


def _reset_statements(sequences: list[str]) -> str:
    """Empty every table, children first, and restart every sequence: what ``TRUNCATE ...
    RESTART IDENTITY CASCADE`` does, in a few milliseconds instead of 0.2-0.4 s (TRUNCATE makes
    new files for each of the tables and their indexes; a test leaves a handful of rows)."""
    deletes = [f"DELETE FROM {table.name}" for table in reversed(metadata.sorted_tables)]
    restarts = [f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences]
    return "; ".join([*deletes, *restarts])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str | None]:
    """A Redis database index of this test process's own (``tests/redis_lease.py``): parallel
    workers and concurrent runs never flush each other's data; credentials and options of
    ``OSTIARY_TEST_REDIS_URL`` are kept."""
    if not TEST_REDIS_URL:
        yield None
        return
    with lease_redis_database(TEST_REDIS_URL, IN_PROCESS_INDEXES) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test would be slower)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    in_thread(upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_database: PostgresDatabase | None,
    redis_url: str | None,
) -> Iterator[Backend]:
    """A clean database (and Redis, on the postgres backend) for one test."""
    if request.param == "sqlite":
        db = tmp_path / "ostiary.db"
        shutil.copy(sqlite_template, db)
        yield Backend("sqlite", f"sqlite:///{db}", None)
        return
    assert postgres_database is not None
    pg_exec(postgres_database.url, postgres_database.reset)
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    yield Backend("postgres", postgres_database.url, redis_url)


def make_settings(backend: Backend, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": backend.database_url,
        "redis_url": backend.redis_url,
        "secret_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "issuer": "http://testserver",
        "log_json": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    from ostiary.web.runtime import Runtime

    rt = Runtime(settings, clock=clock)
    yield rt
    await rt.close()


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    from ostiary.web.app import create_app

    application = create_app(settings, clock=clock)
    yield application
    await application.state.runtime.close()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
