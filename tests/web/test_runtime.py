"""The composition root's catch-up with other processes' writes (SQLite ``data_version``), and
the services a unit builds once and drops when it ends."""

from __future__ import annotations

import gc
import sqlite3
import weakref
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from ostiary.web.runtime import _SERVICES, Unit, service

GOOD = "correct horse battery staple 92"


async def _signed_in_cookie(rt: Any) -> tuple[str, Any]:
    async with rt.unit() as unit:
        user = await unit.accounts.create_user("rt@example.com", GOOD)
        cookie, _ = await unit.sessions.start(user.id, ["pwd"], ip=None, user_agent=None)
    return cookie, user


async def _resolve_after_catch_up(rt: Any, cookie: str) -> Any:
    async with rt.unit() as unit:
        await rt.catch_up(unit)
        return await unit.sessions.resolve(cookie)


async def test_another_process_revoking_on_sqlite_is_seen_at_once(runtime: Any) -> None:
    if runtime.external_writes is None:
        pytest.skip("SQLite only: PostgreSQL + Redis nodes learn revocations over pub/sub")
    cookie, user = await _signed_in_cookie(runtime)
    assert await _resolve_after_catch_up(runtime, cookie) is not None  # cached now
    assert await _resolve_after_catch_up(runtime, cookie) is not None
    # What `ostiary users disable` does from another process, written with plain sqlite3.
    path = make_url(runtime.database_url).database
    now = runtime.clock.now()
    other = sqlite3.connect(path)
    with other:
        other.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
    other.close()
    async with runtime.unit() as unit:
        # The revocation row, through our own store (its format), from a separate "process":
        # bypassing the in-memory set as another process would.
        store = unit.revocation._store
        await store.add("user", user.id, now, now + timedelta(hours=1))
    # Our own commit above does not move data_version; the sqlite3 write did.
    runtime.revoked._entries.clear()
    assert await _resolve_after_catch_up(runtime, cookie) is None
    assert runtime.revoked.session_ended("x", user.id, now - timedelta(seconds=1))


async def test_no_external_write_means_no_query(runtime: Any, monkeypatch: Any) -> None:
    if runtime.external_writes is None:
        pytest.skip("SQLite only")
    cookie, _ = await _signed_in_cookie(runtime)
    await _resolve_after_catch_up(runtime, cookie)
    synced: list[int] = []
    from ostiary.features.oauth.revocation import RevocationService

    original = RevocationService.sync

    async def counting(self: Any) -> int:
        synced.append(1)
        return await original(self)

    monkeypatch.setattr(RevocationService, "sync", counting)
    for _ in range(3):
        assert await _resolve_after_catch_up(runtime, cookie) is not None
    assert synced == []


async def test_a_rolled_back_unit_drops_cached_state(runtime: Any) -> None:
    cookie, user = await _signed_in_cookie(runtime)
    async with runtime.unit() as unit:
        await unit.sessions.resolve(cookie)
    stamp = runtime.user_generations.of(user.id)

    async def failing_request() -> None:
        async with runtime.unit() as unit:
            await unit.accounts.get(user.id)  # opens the connection
            raise RuntimeError("fail the request")

    with pytest.raises(RuntimeError):
        await failing_request()
    assert runtime.user_generations.of(user.id) != stamp


async def test_a_finished_unit_is_freed_by_reference_counting(runtime: Any) -> None:
    """No reference cycle outlives a unit: under load, cycles left for the cyclic GC meant
    multi-millisecond collections on the loop (bench/RESULTS.md, refresh p99)."""
    names = ("accounts", "sessions", "oauth", "clients", "client_assertions", "keys")
    gc.collect()
    gc.disable()
    try:
        async with runtime.unit() as unit:
            services = [weakref.ref(getattr(unit, name)) for name in names]
            kept = unit.accounts  # held past the unit, as the browser sign-in does
            await kept.get("nobody")  # opens the transaction too

        def alive() -> list[str]:
            return [name for name, ref in zip(names, services, strict=True) if ref() is not None]

        assert alive() == ["accounts"]
        del unit, kept
        assert alive() == []
    finally:
        gc.enable()


async def test_a_unit_builds_each_service_once_and_units_share_none(runtime: Any) -> None:
    """``Unit`` services (web/runtime.py ``service``): built on first use, the same object on
    every later read in that unit, a new one in the next unit; release() drops them."""
    async with runtime.unit() as first:
        assert "oauth" not in vars(first)  # nothing built before it is asked for
        oauth = first.oauth
        assert first.oauth is oauth and vars(first)["oauth"] is oauth
        assert "mfa" not in vars(first)  # only what was used (and what it needed)
        async with runtime.unit() as second:
            assert second.oauth is not oauth
            assert second.keys is not first.keys
    assert "oauth" not in vars(first) and "keys" not in vars(first)  # released at the end


async def test_a_unit_builds_each_service_once_and_drops_them_all_when_it_ends(
    runtime: Any,
) -> None:
    assert {"api_keys", "api_key_verifier", "permissions", "rbac"} <= _SERVICES
    assert all(isinstance(vars(Unit)[name], service) for name in _SERVICES)
    async with runtime.unit() as unit:
        verifier = unit.api_key_verifier
        assert unit.api_key_verifier is verifier  # built once, then an attribute
        assert unit.api_keys._verifier is verifier and unit.rbac._permissions is unit.permissions
        built = {name for name in vars(unit) if name in _SERVICES}
        assert {"api_keys", "api_key_verifier", "permissions", "rbac", "orgs", "audit"} <= built
    assert not any(name in _SERVICES for name in vars(unit))  # released: no cycle left
    assert unit.settings is runtime.settings and unit.after_commit == []
