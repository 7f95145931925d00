"""features/apikeys/cache.py: what is kept, what an invalidation drops (a key, an owner, an
organization), the race between a read and an invalidation, and the bounds; and that a cached
key costs verification no database statement."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from ostiary.features.apikeys.cache import KeyCache, key_mark, org_mark, owner_mark
from ostiary.features.apikeys.models import ApiKey, KeyInUse

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _row(key_id: str = "k1", owner: str = "u1", org: str = "o1", **changes: Any) -> KeyInUse:
    key = ApiKey(
        id=key_id,
        organization_id=org,
        owner_type="user",
        owner_id=owner,
        name="key",
        secret_hash="a" * 64,
        previous_hash=None,
        previous_expires_at=None,
        permissions=None,
        models=(),
        allowed_ips=(),
        created_at=NOW,
        expires_at=None,
        last_used_at=None,
        revoked_at=None,
    )
    return KeyInUse(replace(key, **changes), True, None)


def test_a_row_is_kept_until_a_mark_it_depends_on_moves() -> None:
    for mark in (key_mark("k1"), owner_mark("user", "u1"), org_mark("o1")):
        cache = KeyCache()
        cache.put(_row(), cache.begin())
        cache.put(_row("k2", owner="u2", org="o2"), cache.begin())
        assert cache.get("k1") is not None
        cache.invalidate(mark)
        assert cache.get("k1") is None, mark
        assert cache.get("k2") is not None  # another key, owner and organization


def test_an_invalidation_during_the_read_wins() -> None:
    cache = KeyCache()
    read_at = cache.begin()
    cache.invalidate(owner_mark("user", "u1"))  # arrives while the row is being read
    cache.put(_row(), read_at)
    assert cache.get("k1") is None
    cache.put(_row(), cache.begin())  # a read that started after it is current
    assert cache.get("k1") is not None


def test_an_unrelated_invalidation_during_the_read_does_not_matter() -> None:
    cache = KeyCache()
    read_at = cache.begin()
    cache.invalidate(key_mark("other"))
    cache.put(_row(), read_at)
    assert cache.get("k1") is not None


def test_only_rows_that_can_verify_are_kept() -> None:
    cache = KeyCache()
    cache.put(_row(revoked_at=NOW), cache.begin())
    cache.put(replace(_row("k2"), owner_active=False), cache.begin())
    assert len(cache) == 0 and cache.get("k1") is None and cache.get("k2") is None


def test_clear_makes_reads_in_flight_stale_too() -> None:
    cache = KeyCache()
    cache.put(_row(), cache.begin())
    read_at = cache.begin()
    cache.clear()
    assert cache.get("k1") is None
    cache.put(_row("k2"), read_at)
    assert cache.get("k2") is None


def test_bounded_entries_and_marks() -> None:
    cache = KeyCache(max_entries=3, max_marks=2)
    for n in range(5):
        cache.put(_row(f"k{n}"), cache.begin())
    assert len(cache) == 3
    assert cache.get("k0") is None and cache.get("k1") is None and cache.get("k4") is not None
    cache.invalidate(key_mark("x"))
    cache.invalidate(key_mark("y"))
    assert cache.get("k4") is not None
    cache.invalidate(key_mark("z"))  # past max_marks: everything goes (only misses)
    assert len(cache) == 0


async def test_a_cached_key_costs_verification_no_statement(runtime: Any) -> None:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = (await unit.orgs.create("Cached", actor=None)).id
        await unit.orgs.add_member(org, user.id, actor=None)
        await unit.rbac.assign(org, ("user", user.id), "member", actor=None)
        issued = await unit.api_keys.create_key(org, ("user", user.id), actor=None)
    wrong = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", seen)
    try:
        for _ in range(2):  # the first reads the row (and writes last_used_at)
            async with runtime.unit() as unit:
                assert (await unit.api_keys.verify(issued.secret)).valid
        first = len(statements)
        assert first > 0
        for _ in range(3):
            async with runtime.unit() as unit:
                assert (await unit.api_keys.verify(issued.secret)).valid
                assert not (await unit.api_keys.verify(wrong)).valid
        # Hits cost nothing; each wrong secret is checked against a fresh read.
        assert [s for s in statements[first:] if "api_keys" in s] == statements[first:]
        assert len(statements) - first == 3
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", seen)


def test_holds_tells_whether_a_row_kept_elsewhere_is_still_current() -> None:
    """For answers that rest on a row (features/apikeys/callers.py): held while no mark it
    depends on moved since it was read, nor the whole cache was dropped."""
    for change in (key_mark("k1"), owner_mark("user", "u1"), org_mark("o1"), "clear"):
        cache = KeyCache()
        read_at = cache.begin()
        row = _row()
        assert cache.holds(row, read_at)
        cache.invalidate(key_mark("k2"))  # another key: still held
        assert cache.holds(row, read_at)
        if change == "clear":
            cache.clear()
        else:
            cache.invalidate(change)
        assert not cache.holds(row, read_at), change
        assert cache.holds(row, cache.begin())  # read again after it: current
