"""Redis session store: a hash per session, a sorted set of sids per user, a hash-to-sid key.

Keys (``{u:<user_id>}`` hash tags keep one user's keys on one Redis Cluster slot):

- ``ost:s:{u:<user>}:<sid>``   hash: the session fields; expires at the absolute timeout
- ``ost:t:<token_hash>``       string: ``<user>|<sid>``; same expiry
- ``ost:sid:<sid>``            string: ``<user>`` (find a session by its public id); same expiry
- ``ost:u:{u:<user>}``         sorted set: sid -> created_at timestamp

Every node reads the same keys, so revocation on one node is seen by all at once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from ostiary.features.sessions.models import (
    Session,
    decode_factor_times,
    encode_factor_times,
)

__all__ = ["RedisSessionStore"]


def _session_key(user_id: str, sid: str) -> str:
    return f"ost:s:{{u:{user_id}}}:{sid}"


def _user_key(user_id: str) -> str:
    return f"ost:u:{{u:{user_id}}}"


def _hash_key(token_hash: str) -> str:
    return f"ost:t:{token_hash}"


def _sid_key(sid: str) -> str:
    return f"ost:sid:{sid}"


def _ts(value: datetime) -> str:
    return repr(value.timestamp())


def _dt(value: bytes | str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: dict[Any, Any]) -> Session | None:
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    return Session(
        sid=data["sid"],
        token_hash=data["token_hash"],
        user_id=data["user_id"],
        created_at=_dt(data["created_at"]),
        auth_time=_dt(data["auth_time"]),
        last_seen=_dt(data["last_seen"]),
        expires_at=_dt(data["expires_at"]),
        amr=list(orjson.loads(data["amr"])),
        factor_times=decode_factor_times(orjson.loads(data.get("factor_times") or "null")),
        ip=data["ip"] or None,
        user_agent=data["user_agent"] or None,
    )


class RedisSessionStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, session: Session) -> None:
        ttl = max(1, math.ceil((session.expires_at - session.created_at).total_seconds()))
        fields: dict[FieldT, EncodableT] = {
            "sid": session.sid,
            "token_hash": session.token_hash,
            "user_id": session.user_id,
            "created_at": _ts(session.created_at),
            "auth_time": _ts(session.auth_time),
            "last_seen": _ts(session.last_seen),
            "expires_at": _ts(session.expires_at),
            "amr": orjson.dumps(session.amr).decode(),
            "factor_times": orjson.dumps(encode_factor_times(session.factor_times)).decode(),
            "ip": session.ip or "",
            "user_agent": session.user_agent or "",
        }
        key = _session_key(session.user_id, session.sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl)
            pipe.set(_hash_key(session.token_hash), f"{session.user_id}|{session.sid}", ex=ttl)
            pipe.set(_sid_key(session.sid), session.user_id, ex=ttl)
            pipe.zadd(_user_key(session.user_id), {session.sid: session.created_at.timestamp()})
            pipe.expire(_user_key(session.user_id), ttl, gt=True)
            pipe.expire(_user_key(session.user_id), ttl, nx=True)
            await pipe.execute()

    async def by_token_hash(self, token_hash: str) -> Session | None:
        ref = await self._redis.get(_hash_key(token_hash))
        if ref is None:
            return None
        user_id, _, sid = (ref.decode() if isinstance(ref, bytes) else str(ref)).partition("|")
        return await self._load(user_id, sid)

    async def get(self, sid: str) -> Session | None:
        # The public sid alone does not name the user's slot; it is indexed on creation.
        user_id = await self._redis.get(_sid_key(sid))
        if user_id is None:
            return None
        return await self._load(user_id.decode() if isinstance(user_id, bytes) else user_id, sid)

    async def _load(self, user_id: str, sid: str) -> Session | None:
        return _decode(await self._redis.hgetall(_session_key(user_id, sid)))

    async def _load_many(self, user_id: str, sids: list[Any]) -> list[Session | None]:
        """One round trip for any number of sessions (a pipeline of HGETALLs)."""
        if not sids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw_sid in sids:
                pipe.hgetall(_session_key(user_id, _text(raw_sid)))
            return [_decode(raw) for raw in await pipe.execute()]

    async def touch(self, sid: str, last_seen: datetime) -> None:
        session = await self.get(sid)
        if session is not None:
            # HSET only if the hash still exists, so a concurrent delete is not resurrected.
            await self._redis.eval(
                "if redis.call('EXISTS', KEYS[1]) == 1 then "
                "return redis.call('HSET', KEYS[1], 'last_seen', ARGV[1]) end return 0",
                1,
                _session_key(session.user_id, sid),
                _ts(last_seen),
            )

    async def list_for_user(self, user_id: str) -> list[Session]:
        sids = await self._redis.zrevrange(_user_key(user_id), 0, -1)
        found: list[Session] = []
        stale: list[Any] = []
        for raw_sid, session in zip(sids, await self._load_many(user_id, sids), strict=True):
            if session is None:
                stale.append(raw_sid)
            else:
                found.append(session)
        if stale:
            await self._redis.zrem(_user_key(user_id), *stale)
        found.sort(key=lambda s: (s.created_at, s.sid), reverse=True)
        return found

    async def delete(self, sid: str) -> bool:
        session = await self.get(sid)
        if session is None:
            return False
        await self._remove(session)
        return True

    async def _remove(self, session: Session) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_session_key(session.user_id, session.sid))
            pipe.delete(_hash_key(session.token_hash))
            pipe.delete(_sid_key(session.sid))
            pipe.zrem(_user_key(session.user_id), session.sid)
            await pipe.execute()

    async def delete_for_user(self, user_id: str, keep_sid: str | None = None) -> list[str]:
        removed: list[str] = []
        for session in await self.list_for_user(user_id):
            if session.sid != keep_sid:
                await self._remove(session)
                removed.append(session.sid)
        return removed

    async def trim_for_user(self, user_id: str, keep: int) -> list[str]:
        # Scores are creation times: ranks from ``keep`` on are the older sessions.
        beyond: list[Any] = await self._redis.zrevrange(_user_key(user_id), keep, -1)
        removed: list[str] = []
        for raw_sid, session in zip(beyond, await self._load_many(user_id, beyond), strict=True):
            if session is None:
                await self._redis.zrem(_user_key(user_id), raw_sid)
            else:
                await self._remove(session)
                removed.append(session.sid)
        return removed
