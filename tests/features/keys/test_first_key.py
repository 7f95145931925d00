"""The first signing keys of a fresh database (issue 9, item 6; issue 10: one per enabled
algorithm): created by the server itself, exactly one per algorithm even when several replicas
start together on one database.

The guard is the database's (``SqlSigningKeyStore.add_first``): a transaction-scoped advisory
lock on PostgreSQL, the write lock ``BEGIN IMMEDIATE`` takes on SQLite. Each racer below is a
separate :class:`Runtime` with its own engine and connections, as a replica would be.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ostiary.features.clock import FrozenClock
from ostiary.features.keys.models import SigningKey
from ostiary.storage.sqla.repositories import SqlSigningKeyStore
from ostiary.storage.sqla.tables import audit_events, signing_keys
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings

REPLICAS = 4
ALGS = 3  # ES256, RS256 and EdDSA are enabled by default


async def _count(runtime: Runtime) -> tuple[int, int]:
    async with runtime.unit() as unit:
        keys = (await unit.conn.execute(select(func.count()).select_from(signing_keys))).scalar()
        events = (
            await unit.conn.execute(
                select(func.count())
                .select_from(audit_events)
                .where(audit_events.c.action == "key.rotate")
            )
        ).scalar()
    return int(keys or 0), int(events or 0)


async def test_replicas_starting_together_create_exactly_one_key_per_algorithm(
    backend: Backend, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(backend, tmp_path)
    runtimes = [Runtime(settings, clock=clock) for _ in range(REPLICAS)]
    attempts: list[str] = []
    original = SqlSigningKeyStore.add_first
    # PostgreSQL: force the interleaving. Every replica has read an empty table (the unguarded
    # fast path of ensure_key) and generated its first key before any of them tries to insert.
    # (The replica that wins holds the lock until it commits all its keys; the others then see
    # them, so only the first algorithm's insert can be made to race so.)
    # SQLite cannot interleave so: the first replica's BEGIN IMMEDIATE holds the write lock
    # through its read and its insert, and the others wait for it (a barrier would deadlock).
    barrier = asyncio.Barrier(REPLICAS) if backend.name == "postgres" else None

    async def racing_add_first(self: SqlSigningKeyStore, key: SigningKey) -> bool:
        attempts.append(key.alg)
        if barrier is not None and key.alg == "ES256":
            await asyncio.wait_for(barrier.wait(), timeout=30)
        return await original(self, key)

    monkeypatch.setattr(SqlSigningKeyStore, "add_first", racing_add_first)
    try:
        await asyncio.gather(*(rt.ensure_signing_key() for rt in runtimes))
        if barrier is not None:
            # every replica reached the guarded insert
            assert attempts.count("ES256") == REPLICAS
        assert await _count(runtimes[0]) == (ALGS, ALGS)
        # Every replica signs with the one key of each algorithm.
        for alg in ("ES256", "RS256", "EdDSA"):
            kids = set()
            for rt in runtimes:
                async with rt.unit() as unit:
                    kids.add((await unit.keys.signer(alg)).kid)
            assert len(kids) == 1
    finally:
        for rt in runtimes:
            await rt.close()


async def test_a_restart_keeps_the_existing_key(runtime: Any) -> None:
    await runtime.ensure_signing_key()
    async with runtime.unit() as unit:
        first = (await unit.keys.signer("ES256")).kid
    await runtime.ensure_signing_key()
    assert await _count(runtime) == (ALGS, ALGS)
    async with runtime.unit() as unit:
        assert (await unit.keys.signer("ES256")).kid == first


async def test_bootstrap_waits_for_the_migration(tmp_path: Path, clock: FrozenClock) -> None:
    """A replica started before ``ostiary migrate`` creates the key once the schema exists."""
    from ostiary.storage.sqla.migrate import upgrade
    from tests.conftest import in_thread

    url = f"sqlite:///{tmp_path / 'late.db'}"
    runtime = Runtime(make_settings(Backend("sqlite", url, None), tmp_path), clock=clock)
    migrated = asyncio.Event()
    failures: list[None] = []
    original = runtime.unit

    def counting_unit() -> Any:
        if not migrated.is_set():
            failures.append(None)
            if len(failures) == 2:
                in_thread(upgrade, url)
                migrated.set()
        return original()

    runtime.unit = counting_unit  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(runtime.ensure_signing_key(interval=0), timeout=30)
        assert len(failures) == 2  # one failed try on the empty file, then migrated
        runtime.unit = original  # type: ignore[method-assign]
        assert await _count(runtime) == (ALGS, ALGS)
    finally:
        await runtime.close()
