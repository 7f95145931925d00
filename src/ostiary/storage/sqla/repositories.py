"""SQL implementations of the feature ports, over one ``AsyncConnection`` per unit of work.

They flush (execute) and never commit: ``ostiary.storage.sqla.uow`` opens and ends the
transaction, and the web layer decides when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ostiary.features.accounts.models import User
from ostiary.features.accounts.service import EmailTaken
from ostiary.features.audit.models import AuditEvent, AuditQuery
from ostiary.features.audit.ports import ChainLinker
from ostiary.features.keys.models import SigningKey
from ostiary.features.sessions.models import Session, decode_factor_times, encode_factor_times
from ostiary.protocol.audit_chain import GENESIS_HASH
from ostiary.storage.sqla.tables import audit_events, sessions, signing_keys, users
from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlAuditStore", "SqlSessionStore", "SqlSigningKeyStore", "SqlUserStore"]


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        password_hash=row.password_hash,
        email_verified=row.email_verified,
        disabled=row.disabled,
        claims=dict(row.claims or {}),
    )


class SqlUserStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, user_id: str) -> User | None:
        row = (await self._conn.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def get_many(self, user_ids: Sequence[str]) -> list[User]:
        if not user_ids:
            return []
        query = select(users).where(users.c.id.in_(list(dict.fromkeys(user_ids))))
        return [_user(row) for row in await self._conn.execute(query)]

    async def get_by_email(self, email: str) -> User | None:
        query = select(users).where(users.c.email == email.lower())
        row = (await self._conn.execute(query)).first()
        return _user(row) if row else None

    async def add(self, user: User) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(insert(users).values(**_user_values(user)))
        except IntegrityError as exc:
            raise EmailTaken() from exc

    async def update(self, user: User) -> None:
        values = _user_values(user)
        del values["id"]
        await self._conn.execute(update(users).where(users.c.id == user.id).values(**values))

    async def update_email(self, user: User) -> None:
        # A savepoint: an address taken by a concurrent change or creation (the unique index
        # decides) fails this statement only, and the caller's transaction goes on.
        try:
            async with self._conn.begin_nested():
                await self.update(user)
        except IntegrityError as exc:
            raise EmailTaken() from exc

    async def list(self, limit: int = 100, offset: int = 0) -> list[User]:
        query = select(users).order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
        return [_user(r) for r in await self._conn.execute(query)]


def _user_values(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email.lower(),
        "name": user.name,
        "password_hash": user.password_hash,
        "email_verified": user.email_verified,
        "disabled": user.disabled,
        "claims": dict(user.claims),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def _session(row: Any) -> Session:
    return Session(
        sid=row.sid,
        token_hash=row.token_hash,
        user_id=row.user_id,
        created_at=row.created_at,
        auth_time=row.auth_time,
        last_seen=row.last_seen,
        expires_at=row.expires_at,
        amr=list(row.amr or []),
        factor_times=decode_factor_times(row.factor_times),
        ip=row.ip,
        user_agent=row.user_agent,
    )


class SqlSessionStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, session: Session) -> None:
        await self._conn.execute(
            insert(sessions).values(
                sid=session.sid,
                token_hash=session.token_hash,
                user_id=session.user_id,
                created_at=session.created_at,
                auth_time=session.auth_time,
                last_seen=session.last_seen,
                expires_at=session.expires_at,
                amr=list(session.amr),
                factor_times=encode_factor_times(session.factor_times),
                ip=session.ip,
                user_agent=session.user_agent,
            )
        )

    async def by_token_hash(self, token_hash: str) -> Session | None:
        query = select(sessions).where(sessions.c.token_hash == token_hash)
        row = (await self._conn.execute(query)).first()
        return _session(row) if row else None

    async def get(self, sid: str) -> Session | None:
        row = (await self._conn.execute(select(sessions).where(sessions.c.sid == sid))).first()
        return _session(row) if row else None

    async def touch(self, sid: str, last_seen: datetime) -> None:
        await self._conn.execute(
            update(sessions).where(sessions.c.sid == sid).values(last_seen=last_seen)
        )

    async def list_for_user(self, user_id: str) -> list[Session]:
        query = (
            select(sessions)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.created_at.desc(), sessions.c.sid)
        )
        return [_session(r) for r in await self._conn.execute(query)]

    async def delete(self, sid: str) -> bool:
        result = await self._conn.execute(delete(sessions).where(sessions.c.sid == sid))
        return bool(result.rowcount)

    async def delete_for_user(self, user_id: str, keep_sid: str | None = None) -> list[str]:
        condition = sessions.c.user_id == user_id
        if keep_sid is not None:
            condition = condition & (sessions.c.sid != keep_sid)
        sids = list((await self._conn.execute(select(sessions.c.sid).where(condition))).scalars())
        if sids:
            await self._conn.execute(delete(sessions).where(sessions.c.sid.in_(sids)))
        return sids

    async def trim_for_user(self, user_id: str, keep: int) -> list[str]:
        newest_first = (
            select(sessions.c.sid)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.created_at.desc(), sessions.c.sid)
            .offset(keep)
        )
        sids = list((await self._conn.execute(newest_first)).scalars())
        if sids:
            await self._conn.execute(delete(sessions).where(sessions.c.sid.in_(sids)))
        return sids


class SqlSigningKeyStore:
    """``add_first`` is the guard that makes an algorithm's first key unique when several
    replicas start together on a fresh database: on PostgreSQL a transaction-scoped advisory
    lock serializes the "is there a key? insert one" of concurrent transactions (under READ
    COMMITTED, two ``INSERT ... WHERE NOT EXISTS`` would both see an empty table); SQLite
    transactions hold the database's write lock from ``BEGIN IMMEDIATE`` (``engine.py``),
    across processes."""

    # One lock for every algorithm: starts are rare, and each takes it once per algorithm.
    _FIRST_KEY_LOCK_ID = 0x05_71A7_4B01  # arbitrary, constant: "first signing key"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def all(self) -> list[SigningKey]:
        rows = await self._conn.execute(select(signing_keys).order_by(signing_keys.c.activates_at))
        return [
            SigningKey(
                kid=r.kid,
                alg=r.alg,
                public_jwk=dict(r.public_jwk),
                sealed_private_key=bytes(r.sealed_private_key),
                created_at=r.created_at,
                activates_at=r.activates_at,
                retired_at=r.retired_at,
            )
            for r in rows
        ]

    async def add_first(self, key: SigningKey) -> bool:
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": self._FIRST_KEY_LOCK_ID}
            )
        # Each statement reads what committed before it (READ COMMITTED), so a key committed
        # by the transaction that held the lock before us is seen here.
        usable = select(signing_keys.c.kid).where(
            signing_keys.c.alg == key.alg, signing_keys.c.retired_at.is_(None)
        )
        if (await self._conn.execute(usable.limit(1))).first() is not None:
            return False
        await self.add(key)
        return True

    async def add(self, key: SigningKey) -> None:
        await self._conn.execute(
            insert(signing_keys).values(
                kid=key.kid,
                alg=key.alg,
                public_jwk=key.public_jwk,
                sealed_private_key=key.sealed_private_key,
                created_at=key.created_at,
                activates_at=key.activates_at,
                retired_at=key.retired_at,
            )
        )


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        seq=row.seq,
        occurred_at=row.occurred_at,
        organization_id=row.organization_id,
        actor=row.actor,
        action=row.action,
        target=row.target,
        ip=row.ip,
        outcome=row.outcome,
        details=dict(row.details or {}),
        previous_hash=row.previous_hash,
        hash=row.hash,
    )


class SqlAuditStore:
    """Append-only. On PostgreSQL, a transaction-scoped advisory lock serializes appenders so
    that two transactions never chain onto the same previous event; SQLite transactions already
    hold the write lock from ``BEGIN IMMEDIATE`` (see ``engine.py``)."""

    _LOCK_ID = 0x05_71A7_A0D1  # arbitrary, constant: "audit chain"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def append(self, event: AuditEvent, link: ChainLinker) -> AuditEvent:
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": self._LOCK_ID}
            )
        last = (
            await self._conn.execute(
                select(audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
            )
        ).scalar()
        link(event, last or GENESIS_HASH)
        result = await self._conn.execute(
            insert(audit_events)
            .values(
                occurred_at=event.occurred_at,
                organization_id=event.organization_id,
                actor=event.actor,
                action=event.action,
                target=event.target,
                ip=event.ip,
                outcome=event.outcome,
                details=event.details,
                previous_hash=event.previous_hash,
                hash=event.hash,
            )
            .returning(audit_events.c.seq)
        )
        event.seq = int(result.scalar_one())
        return event

    async def scan(self, batch_size: int = 1000) -> AsyncIterator[AuditEvent]:
        after = 0
        while True:
            query = (
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(batch_size)
            )
            rows = list(await self._conn.execute(query))
            for row in rows:
                yield _event(row)
            if len(rows) < batch_size:
                return
            after = rows[-1].seq

    async def recent(self, limit: int, actor: str | None = None) -> list[AuditEvent]:
        query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
        if actor is not None:
            query = query.where(audit_events.c.actor == actor)
        return [_event(r) for r in await self._conn.execute(query)]

    async def search(self, query: AuditQuery, limit: int) -> list[AuditEvent]:
        """Newest first; an organization's slice walks ix_audit_events_organization_seq."""
        c = audit_events.c
        conditions: list[ColumnElement[bool]] = []
        if query.organization_id is not None:
            conditions.append(c.organization_id == query.organization_id)
        if query.before is not None:
            conditions.append(c.seq < query.before)
        if query.action is not None:
            conditions.append(c.action == query.action)
        if query.actor is not None:
            conditions.append(c.actor == query.actor)
        if query.outcome is not None:
            conditions.append(c.outcome == query.outcome)
        if query.since is not None:
            conditions.append(c.occurred_at >= query.since)
        if query.until is not None:
            conditions.append(c.occurred_at < query.until)
        statement = select(audit_events).where(*conditions).order_by(c.seq.desc()).limit(limit)
        return [_event(r) for r in await self._conn.execute(statement)]

    async def count(self) -> int:
        return int(
            (await self._conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        )
