"""Sign-in throttling: a moving window of attempts per key, taken *before* the password check.

OWASP ASVS 5.0 V6.3.1 (controls against credential stuffing and brute force), ASVS 4.0 V2.2.1;
implements :class:`ostiary.features.accounts.ports.LoginThrottle`.

An attempt takes a slot in each of its keys' windows (``ip:<addr>`` and ``account:<email>`` or
``device:<id>``) before argon2 runs and keeps it until the window has passed; a success gives
its slots back. A test-then-count gate lets every concurrent guess through (all of them test
before the first one is counted: 150 of 150 were checked against a limit of 10), so taking the
slot must be one atomic step, on one process and across replicas.

Why not the ``limits`` library, which this module used before: its ``hit()`` is an atomic
acquire (a Lua script on Redis, a lock in memory), but it has no release, and its moving
window stores bare timestamps (a Redis list, a list of entries in memory), so an attempt cannot
name its own entry to take back. A success must be refunded: otherwise successful sign-ins
count against the per-address limit, and an office behind one NAT address locks itself out.
Removing "an" entry through its internals would free the wrong slot (a newer one, so the window
would open early) and break with any change of its storage format. Hence the two small stores
below, with the same semantics (a moving window, limits per key class):

- Redis: one sorted set per key, member = the attempt's random id, score = its time. One Lua
  script trims expired members, counts and adds (a script runs alone on the server, so replicas
  cannot overshoot together); a refund is ``ZREM`` of the attempt's own member, exact. One key
  per script call, so the keys of one attempt may live on different Redis Cluster slots.
- Memory: a dict per key. Every operation runs without an ``await`` between its read and its
  write, so it is atomic on the event loop (the one thread that serves requests).

The keys of one attempt are taken one after the other, each atomically; when one refuses, the
slots already taken are given back, so no key ever counts past its limit. The price is that a
slot held for the microseconds of a refused attempt may refuse a concurrent one on the same
key: errors go towards refusing. Times come from the service's clock (tests freeze it; replicas
keep NTP time, and a skew of a second does not matter against a window of minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryLoginThrottle", "RedisLoginThrottle"]

# Trim, count, add: atomic on the server. Answers "" when the slot was taken, else the time
# (score) at which the oldest counted attempt leaves the window.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return ''
end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return oldest[2]
"""


class _Limits:
    """``ip:*`` keys get the per-address limit; ``account:*`` and ``device:*`` the account one."""

    def __init__(self, *, account_failures: int, ip_failures: int, window_seconds: int) -> None:
        self._account = account_failures
        self._ip = ip_failures
        self._window = float(window_seconds)

    def limit(self, key: str) -> int:
        return self._ip if key.startswith("ip:") else self._account

    def wait(self, oldest: float, now: float) -> int:
        """Whole seconds until the slot of the attempt taken at ``oldest`` frees (at least 1)."""
        return max(1, math.ceil(oldest + self._window - now))


class MemoryLoginThrottle(_Limits):
    """In-process windows: one process, one event loop (see the module docstring)."""

    def __init__(self, *, account_failures: int, ip_failures: int, window_seconds: int) -> None:
        super().__init__(
            account_failures=account_failures,
            ip_failures=ip_failures,
            window_seconds=window_seconds,
        )
        self._windows: dict[str, dict[str, float]] = {}
        self._next_sweep = 0.0

    def _sweep(self, now: float) -> None:
        """Forget keys whose attempts have all left the window (at most once a minute)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        cutoff = now - self._window
        for key in [k for k, w in self._windows.items() if max(w.values(), default=0) <= cutoff]:
            del self._windows[key]

    def _take(self, key: str, attempt: str, now: float) -> int:
        cutoff = now - self._window
        window = {a: t for a, t in self._windows.get(key, {}).items() if t > cutoff}
        limit = self.limit(key)
        if len(window) >= limit:
            self._windows[key] = window
            return self.wait(sorted(window.values())[len(window) - limit], now)
        window[attempt] = now
        self._windows[key] = window
        return 0

    async def acquire(self, keys: Sequence[str], attempt: str, now: datetime) -> int:
        t = now.timestamp()
        self._sweep(t)
        for i, key in enumerate(keys):
            wait = self._take(key, attempt, t)
            if wait:
                self._give_back(keys[:i], attempt)
                return wait
        return 0

    def _give_back(self, keys: Sequence[str], attempt: str) -> None:
        for key in keys:
            self._windows.get(key, {}).pop(attempt, None)

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        self._give_back(keys, attempt)

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)


class RedisLoginThrottle(_Limits):
    """Windows shared by every replica through Redis (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        *,
        account_failures: int,
        ip_failures: int,
        window_seconds: int,
        key_secret: bytes,
        prefix: str = "ost:login:",
    ) -> None:
        super().__init__(
            account_failures=account_failures,
            ip_failures=ip_failures,
            window_seconds=window_seconds,
        )
        self._redis = redis
        self._prefix = prefix
        self._key_secret = key_secret
        self._acquire = redis.register_script(_ACQUIRE)

    def _redis_key(self, key: str) -> str:
        """``ost:login:<class>:<HMAC of the key>``: Redis (its keyspace, dumps, MONITOR) never
        holds the e-mail address or client address a window counts (ASVS 5.0 V14.2: personal
        data only where needed). Keyed, so a list of known addresses cannot be matched
        against the keys. (Nodes of the release before this one, which used the plain names,
        count in other keys during a rolling upgrade: for one window, a limit may admit up to
        twice its attempts.)"""
        kind = key.partition(":")[0]
        digest = hmac.new(self._key_secret, key.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self._prefix}{kind}:{digest}"

    async def acquire(self, keys: Sequence[str], attempt: str, now: datetime) -> int:
        t = now.timestamp()
        for i, key in enumerate(keys):
            args: list[str | int] = [repr(t), repr(self._window), self.limit(key), attempt]
            answer = await self._acquire(keys=[self._redis_key(key)], args=args)
            if answer:
                await self.release(keys[:i], attempt)
                return self.wait(float(answer), t)
        return 0

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        for key in keys:
            await self._redis.zrem(self._redis_key(key), attempt)

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._redis_key(key))
