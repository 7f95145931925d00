"""Failed-login throttling over the ``limits`` library (moving window).

In process by default (``memory://``); shared through Redis when ``OSTIARY_REDIS_URL`` is set,
so a password-guessing client cannot spread attempts across replicas.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

__all__ = ["LimitsLoginThrottle"]


class LimitsLoginThrottle:
    """Implements ``LoginThrottle``: ``account:*`` keys get one limit, ``ip:*`` keys another."""

    def __init__(
        self,
        *,
        account_failures: int,
        ip_failures: int,
        window_seconds: int,
        redis_url: str | None = None,
    ) -> None:
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1)
                if redis_url.startswith("redis://")
                else redis_url,
                implementation="redispy",
                key_prefix="ost:throttle",
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._account = RateLimitItemPerSecond(account_failures, window_seconds)
        self._ip = RateLimitItemPerSecond(ip_failures, window_seconds)

    def _item(self, key: str) -> RateLimitItemPerSecond:
        return self._account if key.startswith("account:") else self._ip

    async def retry_after(self, keys: list[str]) -> int:
        wait = 0.0
        for key in keys:
            item = self._item(key)
            if not await self._limiter.test(item, key):
                stats = await self._limiter.get_window_stats(item, key)
                wait = max(wait, stats.reset_time - time.time())
        return max(1, math.ceil(wait)) if wait > 0 else 0

    async def record_failure(self, keys: list[str]) -> None:
        for key in keys:
            await self._limiter.hit(self._item(key), key)

    async def clear(self, key: str) -> None:
        await self._limiter.clear(self._item(key), key)
