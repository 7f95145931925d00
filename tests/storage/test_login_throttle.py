"""One contract for both ``LoginThrottle`` adapters: in-process memory and Redis.

The windows are moving (an attempt counts for ``window`` seconds from when it was taken), a
taking is atomic (concurrent attempts never overshoot a limit, also from several replicas), and a
refund gives back exactly the attempt's own slot (OWASP ASVS 5.0 V6.3.1).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ostiary.storage.throttle import MemoryLoginThrottle, RedisLoginThrottle
from tests.conftest import TEST_REDIS_URL

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = 900
LIMITS = {"account_failures": 3, "ip_failures": 5, "window_seconds": WINDOW}
ADAPTERS = ["memory", *(["redis"] if TEST_REDIS_URL else [])]

Factory = Callable[[], Any]
KEY_SECRET = bytes(range(32))


@pytest.fixture(params=ADAPTERS)
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Builds throttles that share state as replicas do (Redis: one client each)."""
    if request.param == "memory":
        shared = MemoryLoginThrottle(**LIMITS)  # one process: one store
        yield lambda: shared
        return
    from redis.asyncio import Redis

    url = request.getfixturevalue("redis_url")
    clients: list[Redis] = []

    def build() -> Any:
        clients.append(Redis.from_url(url))
        return RedisLoginThrottle(clients[-1], **LIMITS, key_secret=KEY_SECRET)

    admin = Redis.from_url(url)
    await admin.flushdb()
    yield build
    for client in [admin, *clients]:
        await client.aclose()


@pytest.fixture
def throttle(replicas: Factory) -> Any:
    return replicas()


async def test_limits_per_key_class(throttle: Any) -> None:
    for i in range(3):
        assert await throttle.acquire(["account:a@example.com"], f"a{i}", T0) == 0
    assert await throttle.acquire(["account:a@example.com"], "a3", T0) == WINDOW
    assert await throttle.acquire(["device:d1"], "d0", T0) == 0  # its own key, account limit
    for i in range(5):
        assert await throttle.acquire(["ip:192.0.2.1"], f"i{i}", T0) == 0
    assert await throttle.acquire(["ip:192.0.2.1"], "i5", T0) == WINDOW


async def test_window_moves_and_wait_is_until_the_oldest_leaves(throttle: Any) -> None:
    key = ["account:a@example.com"]
    for i in range(3):
        assert await throttle.acquire(key, f"a{i}", T0 + timedelta(seconds=100 * i)) == 0
    later = T0 + timedelta(seconds=250)
    assert await throttle.acquire(key, "x", later) == WINDOW - 250
    # The first attempt leaves the window at T0 + WINDOW: one slot frees, not three.
    at_edge = T0 + timedelta(seconds=WINDOW)
    assert await throttle.acquire(key, "b", at_edge) == 0
    assert await throttle.acquire(key, "c", at_edge) == 100


async def test_release_gives_back_exactly_the_attempts_own_slot(throttle: Any) -> None:
    key = ["ip:192.0.2.1"]
    for i in range(5):
        await throttle.acquire(key, f"a{i}", T0 + timedelta(seconds=i))
    await throttle.release(key, "a0")
    await throttle.release(key, "never-taken")  # no effect
    assert await throttle.acquire(key, "b", T0 + timedelta(seconds=10)) == 0
    # Full again, and the oldest counted attempt is now a1 (taken at T0 + 1 s).
    assert await throttle.acquire(key, "c", T0 + timedelta(seconds=10)) == WINDOW - 9


async def test_all_or_none_across_keys(throttle: Any) -> None:
    for i in range(3):
        await throttle.acquire(["account:a@example.com"], f"a{i}", T0)
    assert await throttle.acquire(["ip:192.0.2.9", "account:a@example.com"], "z", T0) > 0
    # The refused attempt did not keep its address slot: five more fit.
    for i in range(5):
        assert await throttle.acquire(["ip:192.0.2.9"], f"i{i}", T0) == 0


async def test_clear_forgets_a_key_only(throttle: Any) -> None:
    for i in range(3):
        await throttle.acquire(["account:a@example.com", "ip:192.0.2.1"], f"a{i}", T0)
    await throttle.clear("account:a@example.com")
    assert await throttle.acquire(["account:a@example.com"], "b", T0) == 0
    for i in range(2):
        assert await throttle.acquire(["ip:192.0.2.1"], f"c{i}", T0) == 0
    assert await throttle.acquire(["ip:192.0.2.1"], "d", T0) > 0


async def test_concurrent_attempts_from_several_replicas_never_overshoot(
    replicas: Factory,
) -> None:
    nodes = [replicas() for _ in range(4)]
    keys = ["ip:192.0.2.1", "account:a@example.com"]
    answers = await asyncio.gather(*(nodes[i % 4].acquire(keys, f"a{i}", T0) for i in range(100)))
    assert answers.count(0) == 3
    assert all(wait == WINDOW for wait in answers if wait)
    # Refused attempts kept no address slot: 5 - 3 remain for other accounts.
    assert await nodes[0].acquire(["ip:192.0.2.1"], "b0", T0) == 0
    assert await nodes[1].acquire(["ip:192.0.2.1"], "b1", T0) == 0
    assert await nodes[2].acquire(["ip:192.0.2.1"], "b2", T0) > 0


async def test_memory_forgets_keys_once_their_window_has_passed() -> None:
    throttle = MemoryLoginThrottle(**LIMITS)
    for i in range(50):
        await throttle.acquire([f"account:{i}@example.com"], "a", T0)
    await throttle.acquire(["ip:192.0.2.1"], "b", T0 + timedelta(seconds=WINDOW + 60))
    assert set(throttle._windows) == {"ip:192.0.2.1"}


async def test_redis_keys_name_neither_the_account_nor_the_address(
    request: pytest.FixtureRequest,
) -> None:
    """The keyspace (dumps, MONITOR, KEYS) holds keyed digests, not e-mails or IPs."""
    if "redis" not in ADAPTERS:
        pytest.skip("needs OSTIARY_TEST_REDIS_URL")
    from redis.asyncio import Redis

    client = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        await client.flushdb()
        throttle = RedisLoginThrottle(client, **LIMITS, key_secret=KEY_SECRET)
        keys = ["ip:198.51.100.23", "account:carol@example.com"]
        assert await throttle.acquire(keys, "a1", T0) == 0
        stored = sorted(k.decode() for k in await client.keys("*"))
        assert len(stored) == 2
        assert [k.rsplit(":", 1)[0] for k in stored] == ["ost:login:account", "ost:login:ip"]
        assert not any("carol" in k or "198.51.100.23" in k for k in stored)
        # The same name under another deployment's secret is another key.
        other = RedisLoginThrottle(client, **LIMITS, key_secret=b"x" * 32)
        assert other._redis_key(keys[1]) not in stored
        assert throttle._redis_key(keys[1]) in stored
        await throttle.release(keys, "a1")
        assert await client.zcard(throttle._redis_key(keys[0])) == 0
    finally:
        await client.flushdb()
        await client.aclose()
