"""One contract for every ``SessionStore`` adapter: memory, SQL (SQLite / PostgreSQL), Redis."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ostiary.features.accounts.models import User
from ostiary.features.sessions.models import Session
from ostiary.features.sessions.ports import SessionStore
from ostiary.storage.memory.sessions import MemorySessionStore
from ostiary.storage.sqla.engine import create_engine
from ostiary.storage.sqla.repositories import SqlSessionStore, SqlUserStore
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADAPTERS = [
    "memory",
    "sql-sqlite",
    *(["sql-postgres"] if TEST_DATABASE_URL else []),
    *(["redis"] if TEST_REDIS_URL else []),
]


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    kind = request.param
    if kind == "memory":
        yield MemorySessionStore()
        return
    if kind == "redis":
        from redis.asyncio import Redis

        from ostiary.storage.redis.sessions import RedisSessionStore

        client = Redis.from_url(request.getfixturevalue("redis_url"))
        await client.flushdb()
        yield RedisSessionStore(client)
        await client.aclose()
        return
    if kind == "sql-sqlite":
        db = tmp_path / "s.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), db)
        url = f"sqlite+aiosqlite:///{db}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    async with engine.connect() as conn:
        await conn.begin()
        users = SqlUserStore(conn)
        for user_id in ("u1", "u2"):
            await users.add(User(user_id, f"{user_id}-{uuid.uuid4().hex}@example.com", "", T0, T0))
        yield SqlSessionStore(conn)
        await conn.rollback()
    await engine.dispose()


def _session(user_id: str = "u1", offset_s: int = 0, **kw: Any) -> Session:
    created = T0 + timedelta(seconds=offset_s)
    values: dict[str, Any] = {
        "sid": uuid.uuid4().hex,
        "token_hash": uuid.uuid4().hex + uuid.uuid4().hex,
        "user_id": user_id,
        "created_at": created,
        "auth_time": created,
        "last_seen": created,
        "expires_at": created + timedelta(days=14),
        "amr": ["pwd"],
        "ip": "192.0.2.1",
        "user_agent": "Mozilla/5.0 test",
    }
    values.update(kw)
    return Session(**values)


async def test_add_then_find_by_token_hash_and_by_sid(store: SessionStore) -> None:
    s = _session()
    await store.add(s)
    assert await store.by_token_hash(s.token_hash) == s
    assert await store.get(s.sid) == s


async def test_unknown_lookups_return_none(store: SessionStore) -> None:
    assert await store.by_token_hash("0" * 64) is None
    assert await store.get("nope") is None
    assert await store.delete("nope") is False


async def test_touch_updates_last_seen_only(store: SessionStore) -> None:
    s = _session()
    await store.add(s)
    later = T0 + timedelta(minutes=5)
    await store.touch(s.sid, later)
    found = await store.get(s.sid)
    assert found is not None
    assert found.last_seen == later
    assert found.created_at == s.created_at


async def test_list_for_user_is_newest_first_and_scoped(store: SessionStore) -> None:
    older, newer, other = _session(offset_s=0), _session(offset_s=60), _session("u2")
    for s in (older, newer, other):
        await store.add(s)
    assert [s.sid for s in await store.list_for_user("u1")] == [newer.sid, older.sid]
    assert [s.sid for s in await store.list_for_user("u2")] == [other.sid]


async def test_delete_removes_every_way_to_find_it(store: SessionStore) -> None:
    s = _session()
    await store.add(s)
    assert await store.delete(s.sid) is True
    assert await store.by_token_hash(s.token_hash) is None
    assert await store.get(s.sid) is None
    assert await store.list_for_user("u1") == []


async def test_delete_for_user_keeps_the_named_session(store: SessionStore) -> None:
    keep, drop1, drop2, other = (
        _session(),
        _session(offset_s=1),
        _session(offset_s=2),
        _session("u2"),
    )
    for s in (keep, drop1, drop2, other):
        await store.add(s)
    removed = await store.delete_for_user("u1", keep_sid=keep.sid)
    assert sorted(removed) == sorted([drop1.sid, drop2.sid])
    assert [s.sid for s in await store.list_for_user("u1")] == [keep.sid]
    assert await store.by_token_hash(drop1.token_hash) is None
    assert [s.sid for s in await store.list_for_user("u2")] == [other.sid]
    assert sorted(await store.delete_for_user("u1")) == [keep.sid]


async def test_fields_round_trip_exactly(store: SessionStore) -> None:
    s = _session(amr=["pwd", "otp"], ip=None, user_agent=None, auth_time=T0 - timedelta(minutes=3))
    await store.add(s)
    assert await store.get(s.sid) == s


async def test_the_time_of_each_factor_round_trips(store: SessionStore) -> None:
    # A step-up: the password a while ago, the one-time code now (microseconds kept).
    times = {"pwd": T0 - timedelta(minutes=7, microseconds=250), "otp": T0}
    s = _session(amr=["pwd", "otp", "mfa"], factor_times=times)
    await store.add(s)
    found = await store.by_token_hash(s.token_hash)
    assert found is not None and found.factor_times == times and found == s


async def test_trim_for_user_keeps_the_newest(store: SessionStore) -> None:
    made = [_session(offset_s=i) for i in range(5)]
    other = _session("u2", offset_s=-10)
    for s in (*made, other):
        await store.add(s)
    assert await store.trim_for_user("u1", 5) == []
    removed = await store.trim_for_user("u1", 2)
    assert sorted(removed) == sorted(s.sid for s in made[:3])
    assert [s.sid for s in await store.list_for_user("u1")] == [made[4].sid, made[3].sid]
    assert await store.by_token_hash(made[0].token_hash) is None
    assert [s.sid for s in await store.list_for_user("u2")] == [other.sid]
