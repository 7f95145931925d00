"""Retention (features/retention, storage/sqla/retention.py): expired records go, each kind
kept past expiry for as long as it still guards something; on SQLite and, when configured,
PostgreSQL (+ Redis sessions)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.features.oauth.models import AuthorizationCode, RefreshFamily, RefreshToken
from ostiary.features.sessions.models import Session
from ostiary.storage.sqla.oauth_repositories import (
    SqlAuthorizationCodeStore,
    SqlRefreshTokenStore,
)
from ostiary.storage.sqla.repositories import SqlSessionStore
from ostiary.storage.sqla.tables import (
    authorization_codes,
    client_assertions,
    decision_log,
    refresh_families,
    refresh_tokens,
    revocations,
    sessions,
    totp_factors,
)
from ostiary.web.runtime import Unit

SECOND = timedelta(seconds=1)


async def _count(runtime: Any, table: Any) -> int:
    async with runtime.unit() as unit:
        return int((await unit.conn.execute(select(func.count()).select_from(table))).scalar())


async def _owner(runtime: Any) -> tuple[str, str]:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        client, _ = await unit.clients.register(
            ClientRegistration(name="App", redirect_uris=("https://app.example/cb",))
        )
    return user.id, client.client_id


def _code(user_id: str, client_id: str, expires_at: datetime) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=secrets.token_hex(32),
        client_id=client_id,
        user_id=user_id,
        sid="s",
        redirect_uri="https://app.example/cb",
        scope="openid",
        code_challenge="c" * 43,
        auth_time=expires_at - 60 * SECOND,
        created_at=expires_at - 60 * SECOND,
        expires_at=expires_at,
    )


def _family(user_id: str, client_id: str, expires_at: datetime) -> RefreshFamily:
    return RefreshFamily(
        family_id=secrets.token_hex(16),
        client_id=client_id,
        user_id=user_id,
        sid=None,
        scope="openid offline_access",
        auth_time=expires_at - timedelta(days=30),
        created_at=expires_at - timedelta(days=30),
        expires_at=expires_at,
    )


async def test_each_kind_goes_when_it_no_longer_guards_anything(
    runtime: Any, clock: FrozenClock
) -> None:
    now = clock.now()
    window = runtime.settings.tokens.max_token_ttl  # a replayed code or refresh token's reach
    user_id, client_id = await _owner(runtime)
    async with runtime.unit() as unit:
        await unit.revocation.revoke("jti", "gone", expires_at=now - SECOND)
        await unit.revocation.revoke("jti", "kept", expires_at=now + SECOND)
        codes = SqlAuthorizationCodeStore(unit.conn)
        await codes.add(_code(user_id, client_id, now - window - SECOND))  # past the window
        await codes.add(_code(user_id, client_id, now - window + SECOND))  # a replay still counts
        refresh = SqlRefreshTokenStore(unit.conn)
        old, recent = (
            _family(user_id, client_id, now - window - SECOND),
            _family(user_id, client_id, now - window + SECOND),
        )
        for family in (old, recent):
            await refresh.add_family(family)
            await refresh.add_token(
                RefreshToken(secrets.token_hex(32), family.family_id, now, family.expires_at)
            )
        await unit.conn.execute(
            client_assertions.insert().values(key="a" * 64, expires_at=now - SECOND)
        )
        for expires in (now - SECOND, now + SECOND):  # AuthZEN decisions past their days
            await unit.conn.execute(
                decision_log.insert().values(
                    organization_id="org",
                    at=now - timedelta(days=7),
                    expires_at=expires,
                    request={},
                    decision=True,
                    reason="",
                )
            )
    sql_sessions = runtime.redis_sessions is None
    if sql_sessions:
        async with runtime.unit() as unit:
            store = SqlSessionStore(unit.conn)
            for sid, expires in (("expired", now - SECOND), ("live", now + SECOND)):
                await store.add(
                    Session(
                        sid=sid,
                        token_hash=secrets.token_hex(32),
                        user_id=user_id,
                        created_at=now - timedelta(days=1),
                        auth_time=now - timedelta(days=1),
                        last_seen=now - timedelta(days=1),
                        expires_at=expires,
                        amr=["pwd"],
                    )
                )

    deleted = await runtime.purge_expired()

    expected = {
        "revocations": 1,
        "authorization_codes": 1,
        "refresh_families": 1,
        "client_assertions": 1,
        "decision_log": 1,
        "totp_enrollments": 0,
        "invitations": 0,
        "ended_invitations": 0,
        "revoked_api_keys": 0,
        "expired_api_keys": 0,
    }
    if sql_sessions:
        expected["sessions"] = 1
    assert deleted == expected
    async with runtime.unit() as unit:
        left = [r.value for r in await unit.conn.execute(select(revocations.c.value))]
        assert left == ["kept"]
        families = {r.family_id for r in await unit.conn.execute(select(refresh_families))}
        assert families == {recent.family_id}
        # The family's refresh tokens went with it (ON DELETE CASCADE).
        tokens = {r.family_id for r in await unit.conn.execute(select(refresh_tokens))}
        assert tokens == {recent.family_id}
        if sql_sessions:
            assert [r.sid for r in await unit.conn.execute(select(sessions.c.sid))] == ["live"]
    assert await _count(runtime, authorization_codes) == 1
    assert await _count(runtime, client_assertions) == 0
    assert await _count(runtime, decision_log) == 1
    # Nothing else has expired: a second run deletes nothing.
    assert not any((await runtime.purge_expired()).values())
    # The revocation still applies until its own expiry, then goes too.
    clock.advance(2 * SECOND)
    assert (await runtime.purge_expired())["revocations"] == 1


async def test_unconfirmed_totp_enrollments_go_after_their_time(
    runtime: Any, clock: FrozenClock
) -> None:
    ttl = timedelta(seconds=runtime.settings.mfa_enrollment_seconds)
    stale, fresh, active = [(await _owner(runtime))[0] for _ in range(3)]
    async with runtime.unit() as unit:
        for user_id in (stale, active):
            await unit.mfa.start_totp(user_id, "a@example.com")
    async with runtime.unit() as unit:  # one confirmed at once: never purged
        await unit.conn.execute(
            totp_factors.update()
            .where(totp_factors.c.user_id == active)
            .values(confirmed_at=clock.now())
        )
    clock.advance(ttl - SECOND)
    async with runtime.unit() as unit:
        await unit.mfa.start_totp(fresh, "b@example.com")
    assert (await runtime.purge_expired())["totp_enrollments"] == 0  # not past its time yet
    clock.advance(2 * SECOND)
    assert (await runtime.purge_expired())["totp_enrollments"] == 1
    async with runtime.unit() as unit:
        left = {r.user_id for r in await unit.conn.execute(select(totp_factors.c.user_id))}
    assert left == {fresh, active}


async def test_a_backlog_goes_in_batches_of_bounded_size(
    runtime: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Unit, "batch", 3)
    now = clock.now()
    async with runtime.unit() as unit:
        for i in range(10):
            await unit.revocation.revoke("jti", f"t{i}", expires_at=now - SECOND)
    # Each batch is a transaction of at most 3 deletions; two batches leave 4.
    first = await runtime.purge_expired(max_batches=2)
    assert first["revocations"] == 6
    assert await _count(runtime, revocations) == 4
    assert (await runtime.purge_expired())["revocations"] == 4
    assert await _count(runtime, revocations) == 0


async def test_replicas_purging_at_once_delete_each_row_once(
    runtime: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent purges (several nodes) neither fail nor double-count: on PostgreSQL the
    batches skip rows another transaction holds (FOR UPDATE SKIP LOCKED)."""
    monkeypatch.setattr(Unit, "batch", 7)
    now = clock.now()
    async with runtime.unit() as unit:
        for i in range(120):
            await unit.revocation.revoke("jti", f"t{i}", expires_at=now - SECOND)
    results = await asyncio.gather(*(runtime.purge_expired() for _ in range(6)))
    assert sum(r["revocations"] for r in results) == 120
    assert await _count(runtime, revocations) == 0


async def test_rows_another_node_holds_are_skipped_not_waited_for(
    runtime: Any, clock: FrozenClock, backend: Any
) -> None:
    """PostgreSQL: a node whose purge holds some expired rows (its transaction still open)
    does not stall another node's purge, which deletes the rest at once (SKIP LOCKED)."""
    if backend.name != "postgres":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer at a time)")
    from ostiary.storage.sqla.engine import create_engine

    now = clock.now()
    async with runtime.unit() as unit:
        for i in range(10):
            await unit.revocation.revoke("jti", f"t{i}", expires_at=now - SECOND)
    other_node = create_engine(backend.database_url)
    try:
        async with other_node.connect() as conn, conn.begin():
            held = select(revocations.c.id).order_by(revocations.c.id).limit(4)
            await conn.execute(held.with_for_update())
            deleted = await asyncio.wait_for(runtime.purge_expired(), timeout=10)
            assert deleted["revocations"] == 6
    finally:
        await other_node.dispose()
    assert (await runtime.purge_expired())["revocations"] == 4


async def test_the_servers_loop_purges_and_survives_a_failed_run(
    runtime: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``purge_forever`` (started by the app's lifespan every OSTIARY_PURGE_INTERVAL_SECONDS):
    a run that fails (the database blipped) is logged, and the next run does the work."""
    calls = 0
    real = runtime.purge_expired

    async def blip_once() -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database went away")
        result: dict[str, int] = await real()
        return result

    monkeypatch.setattr(runtime, "purge_expired", blip_once)
    async with runtime.unit() as unit:
        await unit.revocation.revoke("jti", "old", expires_at=clock.now() - SECOND)
    task = asyncio.create_task(runtime.purge_forever(0.01))
    try:
        for _ in range(500):  # bounded: at most 5 s
            if calls >= 2 and await _count(runtime, revocations) == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert calls >= 2
    assert await _count(runtime, revocations) == 0


async def test_revoked_and_expired_api_keys_go_after_keep_ended_keys(
    runtime: Any, clock: FrozenClock
) -> None:
    from ostiary.features.apikeys.service import KEEP_ENDED_KEYS
    from ostiary.storage.sqla.tables import api_keys

    owner = (await _owner(runtime))[0]
    async with runtime.unit() as unit:
        org = (await unit.orgs.create("Keys", actor=None)).id
        await unit.orgs.add_member(org, owner, actor=None)
        await unit.rbac.assign(org, ("user", owner), "owner", actor=None)
        made = {
            name: (
                await unit.api_keys.create_key(
                    org, ("user", owner), expires_in=expires_in, actor=None
                )
            ).key.id
            for name, expires_in in (
                ("live", None),
                ("revoked", None),
                ("expiring", timedelta(days=1)),
            )
        }
        await unit.api_keys.revoke_key(org, made["revoked"], actor=None)

    async def left() -> set[str]:
        async with runtime.unit() as unit:
            return {row.id for row in await unit.conn.execute(select(api_keys.c.id))}

    clock.advance(KEEP_ENDED_KEYS - SECOND)  # revoked 90 days ago less a second: still listed
    deleted = await runtime.purge_expired()
    assert deleted["revoked_api_keys"] == 0 and deleted["expired_api_keys"] == 0
    assert await left() == set(made.values())
    clock.advance(2 * SECOND)
    assert (await runtime.purge_expired())["revoked_api_keys"] == 1
    assert await left() == {made["live"], made["expiring"]}
    clock.advance(timedelta(days=1))  # the expiring key expired 90 days ago
    assert (await runtime.purge_expired())["expired_api_keys"] == 1
    assert await left() == {made["live"]}
