"""Session use cases with a frozen clock: timeouts, touch interval, revocation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ostiary.features.clock import FrozenClock
from ostiary.protocol.opaque_secrets import secret_digest

GOOD = "correct horse battery staple 92"


async def _user(rt: Any, email: str = "s@example.com") -> Any:
    async with rt.unit() as unit:
        return await unit.accounts.create_user(email, GOOD)


async def _start(rt: Any, user_id: str) -> tuple[str, Any]:
    async with rt.unit() as unit:
        result: tuple[str, Any] = await unit.sessions.start(
            user_id, ["pwd"], ip="192.0.2.9", user_agent="UA"
        )
        return result


async def _resolve(rt: Any, cookie: str) -> Any:
    async with rt.unit() as unit:
        return await unit.sessions.resolve(cookie)


async def test_cookie_resolves_and_only_its_hmac_is_stored(runtime: Any) -> None:
    user = await _user(runtime)
    cookie, session = await _start(runtime, user.id)
    assert len(cookie) >= 43  # 256 bits, base64url
    assert session.token_hash == secret_digest(runtime.session_pepper, cookie)
    assert cookie not in session.token_hash
    found = await _resolve(runtime, cookie)
    assert found.sid == session.sid
    assert found.amr == ["pwd"]
    assert found.ip == "192.0.2.9"


async def test_wrong_or_oversized_cookie_resolves_to_nothing(runtime: Any) -> None:
    user = await _user(runtime)
    cookie, _ = await _start(runtime, user.id)
    assert await _resolve(runtime, cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    assert await _resolve(runtime, "x" * 5000) is None


async def test_idle_timeout(runtime: Any, clock: FrozenClock) -> None:
    user = await _user(runtime)
    cookie, _ = await _start(runtime, user.id)
    idle = runtime.session_policy.idle_timeout
    clock.advance(idle - timedelta(seconds=1))
    assert await _resolve(runtime, cookie) is not None  # activity resets the idle clock
    clock.advance(idle - timedelta(seconds=1))
    assert await _resolve(runtime, cookie) is not None
    clock.advance(idle)
    assert await _resolve(runtime, cookie) is None
    async with runtime.unit() as unit:
        assert await unit.session_store.list_for_user(user.id) == []  # expired one deleted


async def test_absolute_timeout_despite_activity(runtime: Any, clock: FrozenClock) -> None:
    user = await _user(runtime)
    cookie, _ = await _start(runtime, user.id)
    policy = runtime.session_policy
    step = policy.idle_timeout / 2
    elapsed = timedelta(0)
    while elapsed + step < policy.absolute_timeout:
        clock.advance(step)
        elapsed += step
        assert await _resolve(runtime, cookie) is not None
    clock.advance(policy.absolute_timeout - elapsed)
    assert await _resolve(runtime, cookie) is None


async def test_last_seen_written_at_most_once_per_touch_interval(
    runtime: Any, clock: FrozenClock
) -> None:
    user = await _user(runtime)
    cookie, session = await _start(runtime, user.id)
    clock.advance(timedelta(seconds=10))
    await _resolve(runtime, cookie)
    async with runtime.unit() as unit:
        assert (await unit.session_store.get(session.sid)).last_seen == session.last_seen
    clock.advance(runtime.session_policy.touch_interval)
    await _resolve(runtime, cookie)
    async with runtime.unit() as unit:
        assert (await unit.session_store.get(session.sid)).last_seen == clock.now()


async def test_revoke_only_own_sessions(runtime: Any) -> None:
    alice, bob = await _user(runtime, "a@example.com"), await _user(runtime, "b@example.com")
    _, bobs = await _start(runtime, bob.id)
    async with runtime.unit() as unit:
        assert await unit.sessions.revoke(alice.id, bobs.sid, ip=None) is False
        assert await unit.sessions.revoke(bob.id, bobs.sid, ip=None) is True
        assert await unit.sessions.list_for_user(bob.id) == []


async def test_revoke_all_keeps_current(runtime: Any) -> None:
    user = await _user(runtime)
    keep_cookie, keep = await _start(runtime, user.id)
    other_cookie, _ = await _start(runtime, user.id)
    async with runtime.unit() as unit:
        removed = await unit.sessions.revoke_all(user.id, keep_sid=keep.sid)
    assert len(removed) == 1
    assert await _resolve(runtime, other_cookie) is None
    assert await _resolve(runtime, keep_cookie) is not None


async def test_oldest_sessions_end_beyond_the_per_user_cap(
    runtime: Any, clock: FrozenClock
) -> None:
    import dataclasses

    runtime.session_policy = dataclasses.replace(runtime.session_policy, max_per_user=3)
    user = await _user(runtime)
    cookies = []
    for _ in range(5):
        clock.advance(timedelta(seconds=1))
        cookies.append((await _start(runtime, user.id))[0])
    assert [await _resolve(runtime, c) is not None for c in cookies] == [
        False,
        False,
        True,
        True,
        True,
    ]
    async with runtime.unit() as unit:
        assert len(await unit.sessions.list_for_user(user.id)) == 3


# -- the in-process cache (features/cache.py) ---------------------------------------------


def _count_store_reads(runtime: Any, monkeypatch: Any) -> list[str]:
    from ostiary.web.runtime import Unit

    reads: list[str] = []
    store_type = type(Unit(runtime, None).session_store)  # type: ignore[arg-type]
    original = store_type.by_token_hash

    async def counting(self: Any, token_hash: str) -> Any:
        reads.append(token_hash)
        return await original(self, token_hash)

    monkeypatch.setattr(store_type, "by_token_hash", counting)
    return reads


async def test_a_resolved_session_is_served_from_memory(runtime: Any, monkeypatch: Any) -> None:
    user = await _user(runtime)
    cookie, session = await _start(runtime, user.id)
    reads = _count_store_reads(runtime, monkeypatch)
    assert (await _resolve(runtime, cookie)).sid == session.sid
    assert (await _resolve(runtime, cookie)).sid == session.sid
    assert (await _resolve(runtime, cookie)).sid == session.sid
    assert len(reads) == 1


async def test_a_session_revoked_on_another_node_is_refused_from_memory(
    runtime: Any, monkeypatch: Any
) -> None:
    user = await _user(runtime)
    cookie, session = await _start(runtime, user.id)
    assert await _resolve(runtime, cookie) is not None  # now cached
    # Another node deletes it and its revocation arrives over pub/sub: no local bump.
    async with runtime.unit() as unit:
        await unit.session_store.delete(session.sid)
    now = runtime.clock.now()
    runtime.revoked.add("sid", session.sid, now, now + timedelta(hours=1))
    assert await _resolve(runtime, cookie) is None


async def test_a_user_disabled_on_another_node_loses_cached_sessions(runtime: Any) -> None:
    user = await _user(runtime)
    cookie, _ = await _start(runtime, user.id)
    assert await _resolve(runtime, cookie) is not None
    now = runtime.clock.now()
    runtime.revoked.add("user", user.id, now, now + timedelta(hours=1))
    async with runtime.unit() as unit:
        await unit.session_store.delete_for_user(user.id)
    assert await _resolve(runtime, cookie) is None


async def test_touch_due_goes_to_the_store(
    runtime: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    user = await _user(runtime)
    cookie, _ = await _start(runtime, user.id)
    reads = _count_store_reads(runtime, monkeypatch)
    assert await _resolve(runtime, cookie) is not None
    clock.advance(runtime.session_policy.touch_interval)
    touched = await _resolve(runtime, cookie)
    assert touched.last_seen == clock.now()
    assert len(reads) == 2
    async with runtime.unit() as unit:
        stored = await unit.session_store.get(touched.sid)
    assert stored.last_seen == clock.now()


async def test_signing_out_locally_invalidates_at_once(runtime: Any) -> None:
    user = await _user(runtime)
    cookie, _ = await _start(runtime, user.id)
    found = await _resolve(runtime, cookie)
    async with runtime.unit() as unit:
        await unit.sessions.end(found, ip=None)
    assert await _resolve(runtime, cookie) is None
