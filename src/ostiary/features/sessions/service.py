"""Session use cases: start, resolve (idle and absolute timeouts), list, revoke.

OWASP ASVS 4.0 V3.3 (session termination: idle and absolute timeouts, logout, "log out of
all other sessions"), V3.2 (new session id on authentication, >= 64 bits entropy).

``resolve`` answers from a process-local cache when it can (``features/cache.py``): a cached
session is used only while it is within its timeouts, needs no touch yet, its user's
generation has not moved (every change below bumps it) and ``ended`` (the revocation set, kept
current on every node) does not cover it. Anything else reads the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ostiary.features.audit.service import AuditTrail
from ostiary.features.cache import Generations, UserScopedCache
from ostiary.features.clock import Clock
from ostiary.features.sessions.models import Session
from ostiary.features.sessions.ports import SessionEndListener, SessionStore
from ostiary.protocol.opaque_secrets import new_secret, secret_digest

__all__ = ["SessionPolicy", "SessionService"]

_MAX_COOKIE_LEN = 128
_MAX_UA_LEN = 512


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_timeout: timedelta
    absolute_timeout: timedelta
    touch_interval: timedelta
    # Bounds the account page and the per-user store (bench: 750 sessions cost 38 ms a page).
    max_per_user: int = 50


class SessionService:
    def __init__(
        self,
        store: SessionStore,
        pepper: bytes,
        policy: SessionPolicy,
        audit: AuditTrail,
        clock: Clock,
        listener: SessionEndListener | None = None,
        *,
        cache: UserScopedCache[Session] | None = None,
        generations: Generations | None = None,
        ended: Callable[[Session], bool] | None = None,
    ) -> None:
        self._listener = listener
        self._cache = cache
        # Unwired (tests, tools): a private counter nobody reads.
        self._generations = generations or Generations()
        self._ended_elsewhere = ended
        self._store = store
        self._pepper = pepper
        self._policy = policy
        self._audit = audit
        self._clock = clock

    async def start(
        self,
        user_id: str,
        amr: list[str],
        *,
        ip: str | None,
        user_agent: str | None,
        auth_time: datetime | None = None,
        factor_times: Mapping[str, datetime] | None = None,
    ) -> tuple[str, Session]:
        """Create a session; returns the cookie value (shown to the browser only) and the record.

        ``factor_times`` says when each method of ``amr`` was used (a step-up carries the
        earlier ones over); methods it leaves out were used now.
        """
        now = self._clock.now()
        times = {m: now for m in amr if m != "mfa"} | dict(factor_times or {})
        cookie = new_secret("", 32)
        session = Session(
            sid=secrets.token_urlsafe(16),
            token_hash=secret_digest(self._pepper, cookie),
            user_id=user_id,
            created_at=now,
            auth_time=auth_time or now,
            last_seen=now,
            expires_at=now + self._policy.absolute_timeout,
            amr=list(amr),
            factor_times={m: t for m, t in times.items() if m in amr},
            ip=ip,
            user_agent="".join(ch for ch in (user_agent or "")[:_MAX_UA_LEN] if ch.isprintable())
            or None,
        )
        await self._store.add(session)
        await self._evict_oldest(user_id)
        self._generations.bump(user_id)
        return cookie, session

    async def _evict_oldest(self, user_id: str) -> None:
        """Keep at most ``max_per_user`` sessions: the oldest ones end (and their tokens)."""
        surplus = await self._store.trim_for_user(user_id, self._policy.max_per_user)
        if surplus:
            await self._ended(surplus)
            await self._audit.record(
                "session.evict",
                "success",
                actor="system",
                target=user_id,
                details={"count": len(surplus), "reason": "max_sessions_per_user"},
            )

    async def resolve(self, cookie: str | None) -> Session | None:
        """The live session for a cookie value, or None; expired sessions are deleted."""
        if not cookie or len(cookie) > _MAX_COOKIE_LEN:
            return None
        token_hash = secret_digest(self._pepper, cookie)
        now = self._clock.now()
        cache = self._cache
        if cache is not None:
            cached = cache.get(token_hash)
            if (
                cached is not None
                and now - cached.last_seen < self._policy.touch_interval
                and self._live(cached, now)
                and not self._is_ended_elsewhere(cached)
            ):
                return cached
        session = await self._store.by_token_hash(token_hash)
        if session is None:
            return None
        if not self._live(session, now):
            await self._store.delete(session.sid)
            self._generations.bump(session.user_id)
            return None
        if now - session.last_seen >= self._policy.touch_interval:
            # Touch sparingly: one write per interval, not per request.
            session.last_seen = now
            await self._store.touch(session.sid, now)
            self._generations.bump(session.user_id)
        if cache is not None and not self._is_ended_elsewhere(session):
            cache.put(token_hash, session.user_id, session)
        return session

    def _live(self, session: Session, now: datetime) -> bool:
        return now < session.expires_at and now < session.last_seen + self._policy.idle_timeout

    def _is_ended_elsewhere(self, session: Session) -> bool:
        return self._ended_elsewhere is not None and self._ended_elsewhere(session)

    async def list_for_user(self, user_id: str) -> list[Session]:
        now = self._clock.now()
        return [s for s in await self._store.list_for_user(user_id) if self._live(s, now)]

    def live(self, sessions: list[Session]) -> list[Session]:
        """The sessions of a (possibly cached) list still within their timeouts, not revoked."""
        now = self._clock.now()
        return [s for s in sessions if self._live(s, now) and not self._is_ended_elsewhere(s)]

    async def end(self, session: Session, *, ip: str | None, reason: str | None = None) -> None:
        """Sign-out of the current session (or its replacement by a new sign-in, ``reason``)."""
        await self._store.delete(session.sid)
        self._generations.bump(session.user_id)
        await self._ended([session.sid])
        await self._audit.record(
            "logout",
            "success",
            actor=session.user_id,
            target=session.sid,
            ip=ip,
            details={"reason": reason} if reason else None,
        )

    async def revoke(self, user_id: str, sid: str, *, ip: str | None) -> bool:
        """Revoke one of ``user_id``'s sessions; another user's sid is treated as unknown."""
        session = await self._store.get(sid)
        if session is None or session.user_id != user_id:
            return False
        await self._store.delete(sid)
        self._generations.bump(user_id)
        await self._ended([sid])
        await self._audit.record("session.revoke", "success", actor=user_id, target=sid, ip=ip)
        return True

    async def revoke_all(
        self,
        user_id: str,
        *,
        keep_sid: str | None = None,
        actor: str | None = None,
        ip: str | None = None,
        reason: str = "user_request",
    ) -> list[str]:
        """End every session of a user (except ``keep_sid``): "sign out everywhere else"."""
        removed = await self._store.delete_for_user(user_id, keep_sid=keep_sid)
        self._generations.bump(user_id)
        await self._ended(removed)
        await self._audit.record(
            "session.revoke_all",
            "success",
            actor=actor or user_id,
            target=user_id,
            ip=ip,
            details={"count": len(removed), "reason": reason},
        )
        return removed

    async def is_active(self, sid: str) -> bool:
        return await self.expires_at(sid) is not None

    async def expires_at(self, sid: str) -> datetime | None:
        """When a live session reaches its absolute timeout; None if it is not live (ended,
        or past its idle or absolute timeout). Reads only: asking is not activity, so it
        never extends the idle timeout."""
        session = await self._store.get(sid)
        if session is None or not self._live(session, self._clock.now()):
            return None
        return session.expires_at

    async def _ended(self, sids: list[str]) -> None:
        if sids and self._listener is not None:
            await self._listener.sessions_ended(sids)
