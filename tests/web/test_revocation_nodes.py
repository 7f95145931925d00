"""Revocations reach every node, placed in time to the microsecond (issue 9, items 3 and 9).

Two runtimes on one database (and one Redis) stand for two replicas. A revocation made on
node A reaches node B by Redis pub/sub (storage/redis/revocations.py) or, without pub/sub, by
the database poll (``Runtime.sync_revocations_forever``: ``RevocationService.sync`` on
PostgreSQL, the ``PRAGMA data_version`` catch-up on SQLite). Either way it covers the tokens
issued at or before it, to the microsecond, on both nodes: a token issued in the same second
after it is active ("born revoked" otherwise), one issued in the same second before it is not.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock, SystemClock
from ostiary.features.oauth.models import RevocationKind
from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter
from ostiary.storage.redis.revocations import CHANNEL
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings

ISSUER = "http://testserver"
USER, CLIENT, SID = "u-1", "c-1", "s-1"
VALUES: dict[RevocationKind, str] = {
    "sid": SID,
    "user": USER,
    "client": CLIENT,
    "user_client": f"{USER}|{CLIENT}",
}
DEADLINE_S = 10.0


async def _mint(rt: Runtime, now: datetime) -> str:
    async with rt.unit() as unit:
        minted = await TokenMinter(unit.keys, ISSUER).access_token(
            AccessTokenRequest(
                client_id=CLIENT,
                subject=USER,
                scope="openid",
                audience=[ISSUER],
                ttl=timedelta(minutes=5),
                sid=SID,
            ),
            now,
        )
    return minted.token


async def _active(rt: Runtime, token: str) -> bool:
    async with rt.unit() as unit:
        return await unit.oauth.validate_access_token(token) is not None


async def _until(condition: Any) -> None:
    """Wait (bounded) for a background task of the node to have done its part."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await condition():
        assert loop.time() < deadline, "the revocation never reached the other node"
        await asyncio.sleep(0.01)


async def _subscribed(rt: Runtime) -> None:
    assert rt.redis is not None

    async def listening() -> bool:
        assert rt.redis is not None
        counts = await rt.redis.pubsub_numsub(CHANNEL)
        return bool(counts and counts[0][1] >= 1)

    await _until(listening)


@pytest.fixture
async def frozen() -> FrozenClock:
    # Inside a whole second, so that everything below happens in the same second.
    return FrozenClock(datetime(2026, 5, 1, 12, 0, 0, 234_567, tzinfo=UTC))


@asynccontextmanager
async def _nodes(settings: Any, clock: Any) -> AsyncIterator[tuple[Runtime, Runtime]]:
    node_a, node_b = Runtime(settings, clock=clock), Runtime(settings, clock=clock)
    try:
        async with node_a.unit() as unit:
            await unit.keys.ensure_keys()
        yield node_a, node_b
    finally:
        await node_a.close()
        await node_b.close()


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("path", ["pubsub", "poll"])
@pytest.mark.parametrize("kind", list(VALUES))
async def test_revoke_and_reissue_in_the_same_second_on_every_node(
    backend: Backend, tmp_path: Path, frozen: FrozenClock, kind: RevocationKind, path: str
) -> None:
    if path == "pubsub" and backend.redis_url is None:
        pytest.skip("pub/sub needs Redis (the postgres backend with OSTIARY_TEST_REDIS_URL)")
    # The poll path: no Redis at all, as a deployment without OSTIARY_REDIS_URL.
    settings = make_settings(backend, tmp_path, **({"redis_url": None} if path == "poll" else {}))
    background: asyncio.Task[None] | None = None
    async with _nodes(settings, frozen) as (node_a, node_b):
        try:
            if path == "pubsub":
                assert node_b.revocation_bus is not None
                background = asyncio.create_task(node_b.revocation_bus.listen(node_b.revoked.add))
                await _subscribed(node_a)
            before = await _mint(node_a, frozen.now())  # 12:00:00.234567
            frozen.advance(timedelta(microseconds=170_000))
            just_before = await _mint(node_b, frozen.now())  # .404567
            frozen.advance(timedelta(microseconds=1))
            async with node_a.unit() as unit:
                await unit.revocation.revoke(kind, VALUES[kind])  # .404568
            frozen.advance(timedelta(microseconds=1))
            after_a = await _mint(node_a, frozen.now())  # .404569, the same second
            frozen.advance(timedelta(milliseconds=500))
            after_b = await _mint(node_b, frozen.now())
            if path == "poll":
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def arrived() -> bool:
                return not await _active(node_b, before)

            await _until(arrived)
            for name, node in (("A", node_a), ("B", node_b)):
                assert not await _active(node, before), f"{kind}: issued before, on node {name}"
                assert not await _active(node, just_before), f"{kind}: 1 µs before, node {name}"
                assert await _active(node, after_a), f"{kind}: born revoked on node {name}"
                assert await _active(node, after_b), f"{kind}: born revoked on node {name}"
        finally:
            await _stop(background)


async def test_poll_catches_up_with_every_revocation_on_postgresql_without_pubsub(
    backend: Backend, tmp_path: Path, frozen: FrozenClock
) -> None:
    """The path CI never takes otherwise: replicas without Redis learn from the table alone."""
    if backend.name != "postgres":
        pytest.skip("SQLite: test_another_process_revokes_on_sqlite")
    settings = make_settings(backend, tmp_path, redis_url=None)
    async with _nodes(settings, frozen) as (node_a, node_b):
        assert node_b.external_writes is None and node_b.revocation_bus is None
        poll = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))
        try:
            token = await _mint(node_a, frozen.now())
            frozen.advance(timedelta(milliseconds=1))
            for kind, value in VALUES.items():
                async with node_a.unit() as unit:
                    await unit.revocation.revoke(kind, value)

            async def all_arrived() -> bool:
                return len(node_b.revoked) == len(VALUES)

            await _until(all_arrived)
            assert not await _active(node_b, token)
        finally:
            await _stop(poll)


async def test_poll_sees_a_revocation_committed_after_a_later_one_on_postgresql(
    backend: Backend, tmp_path: Path, frozen: FrozenClock
) -> None:
    """PostgreSQL hands out ids at insert and transactions commit in any order: a revocation
    whose transaction commits after a later id was read is still loaded by the next poll."""
    if backend.name != "postgres":
        pytest.skip("SQLite writers take turns: ids commit in order")
    settings = make_settings(backend, tmp_path, redis_url=None)
    async with _nodes(settings, frozen) as (node_a, node_b):
        token = await _mint(node_a, frozen.now())
        frozen.advance(timedelta(milliseconds=1))
        async with node_a.unit() as slow:
            await slow.revocation.revoke("user", USER)  # id 1, not committed yet
            async with node_a.unit() as fast:
                await fast.revocation.revoke("client", "another")  # id 2, committed first
            async with node_b.unit() as unit:
                assert await unit.revocation.sync() == 1
            assert await _active(node_b, token)
        async with node_b.unit() as unit:
            assert await unit.revocation.sync() == 1  # id 1, now committed
        assert not await _active(node_b, token)


async def test_another_process_revokes_on_sqlite(backend: Backend, tmp_path: Path) -> None:
    """``ostiary clients delete`` in a process of its own: this node's poll sees the write
    through ``PRAGMA data_version`` and loads the revocation (real clocks on both sides)."""
    if backend.name != "sqlite":
        pytest.skip("PostgreSQL: test_poll_catches_up_with_every_revocation_on_postgresql")
    settings = make_settings(backend, tmp_path)
    node = Runtime(settings, clock=SystemClock())
    poll: asyncio.Task[None] | None = None
    try:
        async with node.unit() as unit:
            await unit.keys.ensure_keys()
        token = await _mint(node, node.clock.now())
        assert node.external_writes is not None
        poll = asyncio.create_task(node.sync_revocations_forever(interval=0.01))
        assert await _active(node, token)
        async with node.unit() as unit:
            await unit.clients.register(
                ClientRegistration(
                    name="doomed", grant_types=("client_credentials",), client_id=CLIENT
                )
            )
        env = {
            **os.environ,
            "OSTIARY_DATA_DIR": str(tmp_path),
            "OSTIARY_DATABASE_URL": backend.database_url,
            "OSTIARY_SECRET_KEY": settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
            "OSTIARY_ISSUER": ISSUER,
        }
        env.pop("OSTIARY_REDIS_URL", None)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ostiary", "clients", "delete", CLIENT],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

        async def arrived() -> bool:
            return not await _active(node, token)

        await _until(arrived)
    finally:
        await _stop(poll)
        await node.close()


async def test_pubsub_messages_of_the_previous_release_are_applied(
    backend: Backend, tmp_path: Path, frozen: FrozenClock
) -> None:
    """During a rolling upgrade an older node sends float seconds only (``r``, ``e``)."""
    if backend.redis_url is None:
        pytest.skip("pub/sub needs Redis (the postgres backend with OSTIARY_TEST_REDIS_URL)")
    settings = make_settings(backend, tmp_path)
    async with _nodes(settings, frozen) as (node_a, node_b):
        assert node_a.redis is not None and node_b.revocation_bus is not None
        listener = asyncio.create_task(node_b.revocation_bus.listen(node_b.revoked.add))
        try:
            await _subscribed(node_a)
            token = await _mint(node_a, frozen.now())
            revoked_at = frozen.now() + timedelta(milliseconds=1)
            message = {
                "k": "user",
                "v": USER,
                "r": revoked_at.timestamp(),
                "e": (revoked_at + timedelta(minutes=5)).timestamp(),
            }
            await node_a.redis.publish(CHANNEL, orjson.dumps(message))

            async def arrived() -> bool:
                return not await _active(node_b, token)

            await _until(arrived)
        finally:
            await _stop(listener)
