"""Exclusive Redis database indexes for test processes (in-process suites and e2e servers).

Each test process (an xdist worker, or an e2e server) leases one database index under a file
lock, so concurrent pytest runs on one machine (several checkouts, CI beside a developer) never
flush each other's data. The URL keeps the configured credentials, host, port and options; only
the path (the index) changes. When every index of the range is held, the lease waits for one
to be released instead of failing or sharing.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = ["E2E_INDEXES", "IN_PROCESS_INDEXES", "lease_redis_database"]

IN_PROCESS_INDEXES = range(1, 8)
E2E_INDEXES = range(8, 16)
WAIT_S = 300.0


@contextlib.contextmanager
def lease_redis_database(base_url: str, indexes: range) -> Iterator[str]:
    """Hold one index of ``indexes`` exclusively; yield ``base_url`` pointing at it, flushed."""
    import redis

    parts = urlsplit(base_url)
    lock_dir = Path(tempfile.gettempdir())
    deadline = time.monotonic() + WAIT_S
    while True:
        for index in indexes:
            lock_path = lock_dir / f"ostiary-test-redis-{parts.hostname}-{parts.port}-{index}.lock"
            handle = lock_path.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                url = urlunsplit(parts._replace(path=f"/{index}"))
                client = redis.Redis.from_url(url, socket_connect_timeout=5)
                try:
                    client.flushdb()
                except Exception as exc:
                    client.close()
                    pytest.fail(
                        "OSTIARY_TEST_REDIS_URL is set but Redis is unreachable: "
                        f"{type(exc).__name__}: {exc}"
                    )
                try:
                    yield url
                finally:
                    with contextlib.suppress(Exception):
                        client.flushdb()
                    client.close()
                return
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        if time.monotonic() > deadline:
            pytest.fail(f"no free Redis database index among {list(indexes)} in {WAIT_S:.0f} s")
        time.sleep(0.2)
