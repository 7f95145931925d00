"""storage/sqla/mfa_repositories.py SqlPasskeyStore on every backend: credential ids unique
across users, the signature counter's compare-and-set, counts in one query, and the rows going
with their user (ON DELETE CASCADE)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from ostiary.features.clock import FrozenClock
from ostiary.features.mfa.models import Passkey
from ostiary.storage.sqla.mfa_repositories import SqlPasskeyStore
from ostiary.storage.sqla.tables import users


def _passkey(user_id: str, clock: FrozenClock, **changes: Any) -> Passkey:
    values: dict[str, Any] = {
        "credential_id": secrets.token_bytes(32),
        "user_id": user_id,
        "name": "Key",
        "public_key": b"\xa5" + secrets.token_bytes(70),
        "sign_count": 0,
        "transports": ("internal", "hybrid"),
        "aaguid": "00000000-0000-0000-0000-000000000000",
        "backup_eligible": True,
        "backup_state": False,
        "user_verified": True,
        "created_at": clock.now(),
    }
    values.update(changes)
    return Passkey(**values)


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def test_round_trip_and_unique_ids(runtime: Any, clock: FrozenClock) -> None:
    alice, bob = await _user(runtime), await _user(runtime)
    key = _passkey(alice, clock)
    async with runtime.unit() as unit:
        store = SqlPasskeyStore(unit.conn)
        assert await store.add(key)
        assert not await store.add(_passkey(bob, clock, credential_id=key.credential_id))
        later = clock.now() + timedelta(seconds=1)
        assert await store.add(_passkey(alice, clock, name="Second", created_at=later))
    async with runtime.unit() as unit:
        store = SqlPasskeyStore(unit.conn)
        assert await store.get(key.credential_id) == key
        assert [p.name for p in await store.list_for_user(alice)] == ["Key", "Second"]
        assert await store.list_for_user(bob) == []
        assert await store.count_among([alice, bob, "nobody"]) == {alice: 2}
        assert not await store.rename(bob, key.credential_id, "Mine")
        assert await store.rename(alice, key.credential_id, "Renamed")
        assert not await store.delete(bob, key.credential_id)
        assert await store.delete(alice, key.credential_id)
        assert await store.get(key.credential_id) is None
        assert await store.delete_all(alice) == 1


async def test_record_use_is_a_compare_and_set_on_the_counter(
    runtime: Any, clock: FrozenClock
) -> None:
    alice = await _user(runtime)
    key = _passkey(alice, clock, sign_count=5)
    async with runtime.unit() as unit:
        await SqlPasskeyStore(unit.conn).add(key)
    async with runtime.unit() as unit:
        store = SqlPasskeyStore(unit.conn)
        used = dict(backup_state=True, used_at=clock.now())
        assert await store.record_use(key.credential_id, expected_count=5, new_count=6, **used)
        # A second assertion read the counter as 5 too: it loses.
        assert not await store.record_use(key.credential_id, expected_count=5, new_count=7, **used)
        stored = await store.get(key.credential_id)
    assert stored is not None
    assert (stored.sign_count, stored.backup_state, stored.last_used_at) == (6, True, clock.now())


async def test_passkeys_go_with_their_user(runtime: Any, clock: FrozenClock) -> None:
    alice = await _user(runtime)
    async with runtime.unit() as unit:
        await SqlPasskeyStore(unit.conn).add(_passkey(alice, clock))
    async with runtime.unit() as unit:
        await unit.conn.execute(delete(users).where(users.c.id == alice))
    async with runtime.unit() as unit:
        assert await SqlPasskeyStore(unit.conn).count_among([alice]) == {}
