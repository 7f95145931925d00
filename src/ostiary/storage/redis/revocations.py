"""Revocation fan-out over Redis pub/sub (ARCHITECTURE.md, "Tokens and revocation").

Every node publishes what it revokes and listens for what the others revoke, so an access
token revoked on one replica is refused by introspection on every replica within
milliseconds. The database stays the record: a node that missed messages (restart, network
blip) catches up from the ``revocations`` table, which each node also polls.

Instants travel as integer microseconds since the epoch (``ru``, ``eu``): a revocation
covers the tokens issued at or before it to the microsecond (features/oauth/revocation.py),
which a float of seconds does not promise to carry. ``r`` and ``e`` (float seconds) are still
sent and read for nodes of the previous release during a rolling upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from ostiary.features.oauth.models import RevocationKind
from ostiary.features.oauth.tokens import EPOCH, microseconds_since_epoch

__all__ = ["CHANNEL", "RedisRevocationBus"]

CHANNEL = "ost:revocations"
log = structlog.get_logger("ostiary.revocation")


class RedisRevocationBus:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(
        self, kind: RevocationKind, value: str, revoked_at: datetime, expires_at: datetime
    ) -> None:
        message = orjson.dumps(
            {
                "k": kind,
                "v": value,
                "ru": microseconds_since_epoch(revoked_at),
                "eu": microseconds_since_epoch(expires_at),
                "r": revoked_at.timestamp(),
                "e": expires_at.timestamp(),
            }
        )
        await self._redis.publish(CHANNEL, message)

    async def listen(self, apply: Callable[[str, str, datetime, datetime], None]) -> None:
        """Apply every published revocation until cancelled; reconnects after errors."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = orjson.loads(message["data"])
                        apply(
                            str(data["k"]),
                            str(data["v"]),
                            _instant(data, "ru", "r"),
                            _instant(data, "eu", "e"),
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep listening whatever one message or link did
                log.warning("revocation_listener_error", error=type(exc).__name__)
                await asyncio.sleep(1)


def _instant(data: dict[str, Any], micros: str, seconds: str) -> datetime:
    value = data.get(micros)
    if type(value) is int:
        return EPOCH + timedelta(microseconds=value)
    return datetime.fromtimestamp(float(data[seconds]), UTC)
