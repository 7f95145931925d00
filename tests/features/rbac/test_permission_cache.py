"""features/rbac/cache.py: entries go stale with their principal's or organization's counter,
a computation overtaken by an invalidation is not stored, and the cache is bounded; and the
revocation set hands ``rbac`` events to the cache without keeping them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ostiary.features.oauth.revocation import RevocationSet
from ostiary.features.rbac.cache import PermissionCache, invalidation_key

P = frozenset({"models:read"})


def test_an_entry_is_served_until_its_principal_or_organization_changes() -> None:
    cache = PermissionCache()
    cache.put("o1", "user", "u1", None, P, cache.stamp("o1", "user", "u1"))
    cache.put("o1", "user", "u2", "p1", P, cache.stamp("o1", "user", "u2"))
    cache.put("o2", "user", "u1", None, P, cache.stamp("o2", "user", "u1"))
    assert cache.get("o1", "user", "u1", None) == P
    assert cache.get("o1", "user", "u1", "p1") is None  # another project: another entry
    cache.invalidate(invalidation_key("o1", ("user", "u1")))
    assert cache.get("o1", "user", "u1", None) is None
    assert cache.get("o1", "user", "u2", "p1") == P and cache.get("o2", "user", "u1", None) == P
    cache.invalidate(invalidation_key("o1", None))
    assert cache.get("o1", "user", "u2", "p1") is None
    assert cache.get("o2", "user", "u1", None) == P


def test_a_result_overtaken_by_an_invalidation_is_not_stored() -> None:
    cache = PermissionCache()
    stamp = cache.stamp("o", "service_account", "s")
    cache.invalidate(invalidation_key("o", ("service_account", "s")))  # arrives mid-compute
    cache.put("o", "service_account", "s", None, P, stamp)
    assert cache.get("o", "service_account", "s", None) is None and len(cache) == 0


def test_bounded_entries_and_counters() -> None:
    cache = PermissionCache(max_entries=3, max_counters=2)
    for n in range(5):
        cache.put("o", "user", f"u{n}", None, P, cache.stamp("o", "user", f"u{n}"))
    assert len(cache) == 3 and cache.get("o", "user", "u0", None) is None
    assert cache.get("o", "user", "u4", None) == P
    cache.invalidate("o|user|x")
    cache.invalidate("o|user|y")
    cache.invalidate("o|user|z")  # a third counter: everything is dropped, safely
    assert len(cache) == 0


def test_the_revocation_set_hands_rbac_events_to_the_cache_and_keeps_none() -> None:
    revoked = RevocationSet()
    cache = PermissionCache()
    revoked.observers["rbac"] = cache.invalidate
    cache.put("o", "user", "u", None, P, cache.stamp("o", "user", "u"))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    revoked.add("rbac", "o|user|u", now, now + timedelta(minutes=5))
    assert cache.get("o", "user", "u", None) is None
    assert len(revoked) == 0
    revoked.add("sid", "s-1", now, now + timedelta(minutes=5))
    assert len(revoked) == 1
