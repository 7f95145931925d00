"""Two runtimes on one database (and one Redis) standing for two replicas, and the two ways a
change reaches the second: Redis pub/sub, or the poll of the ``revocations`` table (on SQLite,
the ``PRAGMA data_version`` catch-up). Shared by the tests of every per-node cache
(test_*_nodes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ostiary.features.clock import FrozenClock
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.test_revocation_nodes import _subscribed

__all__ = ["PATHS", "hear", "node_settings", "poll", "two_nodes"]

PATHS = ["pubsub", "poll"]


def node_settings(backend: Backend, tmp_path: Path, path: str) -> Any:
    """Settings for ``path``: "pubsub" needs Redis (skipped without it); "poll" runs with no
    Redis at all, as a deployment without OSTIARY_REDIS_URL."""
    if path == "pubsub" and backend.redis_url is None:
        pytest.skip("pub/sub needs Redis (the postgres backend with OSTIARY_TEST_REDIS_URL)")
    return make_settings(backend, tmp_path, **({"redis_url": None} if path == "poll" else {}))


@asynccontextmanager
async def two_nodes(settings: Any) -> AsyncIterator[tuple[Runtime, Runtime]]:
    clock = FrozenClock()
    node_a, node_b = Runtime(settings, clock=clock), Runtime(settings, clock=clock)
    try:
        yield node_a, node_b
    finally:
        await node_a.close()
        await node_b.close()


async def poll(node: Runtime) -> None:
    """One round of what the server's poll does (SQLite: the catch-up after another process
    wrote; otherwise the ``revocations`` table since the last round)."""
    async with node.unit() as unit:
        if node.external_writes is not None:
            await node.catch_up(unit)
        else:
            await unit.revocation.sync()


async def hear(path: str, node_a: Runtime, node_b: Runtime) -> asyncio.Task[None] | None:
    """Node B starts hearing node A's changes: it listens to pub/sub (the task is returned, to
    stop with ``_stop``), or it polls once now, so that only later changes are news."""
    if path == "pubsub":
        assert node_b.revocation_bus is not None
        task = asyncio.create_task(node_b.revocation_bus.listen(node_b.revoked.add))
        await _subscribed(node_a)
        return task
    await poll(node_b)
    return None
