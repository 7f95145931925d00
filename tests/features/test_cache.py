"""Per-user generation caches: a user's change, a global clear, age and size bounds."""

from __future__ import annotations

from ostiary.features.cache import Generations, UserScopedCache


class _Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_users_change_makes_only_that_users_entries_stale() -> None:
    gens = Generations()
    cache = UserScopedCache[str](gens)
    cache.put("k1", "alice", "a1")
    cache.put("k2", "alice", "a2")
    cache.put("k3", "bob", "b1")
    gens.bump("alice")
    assert cache.get("k1") is None
    assert cache.get("k2") is None
    assert cache.get("k3") == "b1"
    cache.put("k1", "alice", "a1-new")  # stored at the new generation
    assert cache.get("k1") == "a1-new"


def test_clear_makes_every_entry_stale_even_for_users_never_bumped() -> None:
    gens = Generations()
    cache = UserScopedCache[str](gens)
    cache.put("k", "carol", "c")
    gens.clear()
    assert cache.get("k") is None


def test_entries_age_out() -> None:
    ticker = _Ticker()
    cache = UserScopedCache[str](Generations(), max_age=5.0, monotonic=ticker)
    cache.put("k", "u", "v")
    ticker.now += 5.0
    assert cache.get("k") == "v"
    ticker.now += 0.01
    assert cache.get("k") is None
    assert len(cache) == 0


def test_size_is_bounded_oldest_insertion_first() -> None:
    cache = UserScopedCache[int](Generations(), max_entries=3)
    for i in range(5):
        cache.put(f"k{i}", "u", i)
    assert len(cache) == 3
    assert cache.get("k0") is None and cache.get("k1") is None
    assert [cache.get(f"k{i}") for i in (2, 3, 4)] == [2, 3, 4]


def test_generation_table_is_bounded_and_stays_safe_when_it_resets() -> None:
    gens = Generations(limit=2)
    cache = UserScopedCache[str](gens)
    cache.put("k", "u0", "v")
    gens.bump("u1")
    gens.bump("u2")
    gens.bump("u3")  # over the limit: counters reset, the epoch moves
    assert cache.get("k") is None  # u0's counter is 0 again, but the epoch differs
