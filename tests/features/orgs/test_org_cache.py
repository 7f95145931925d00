"""The per-node organization cache (features/orgs/cache.py): an invalidation drops an
organization under every reference it was cached by, and a result fetched before an
invalidation arrived is not kept."""

from __future__ import annotations

from datetime import UTC, datetime

from ostiary.features.orgs.cache import OrgCache
from ostiary.features.orgs.models import Organization

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _org(org_id: str, slug: str) -> Organization:
    return Organization(org_id, slug, slug.title(), NOW, NOW)


def test_invalidating_an_organization_drops_it_under_its_id_and_its_slug() -> None:
    cache = OrgCache()
    acme, other = _org("o-1", "acme"), _org("o-2", "other")
    cache.put("o-1", acme, cache.stamp())
    cache.put("acme", acme, cache.stamp())
    cache.put("other", other, cache.stamp())
    assert cache.get("acme") == acme and cache.get("o-1") == acme
    cache.invalidate("o-1")
    assert cache.get("acme") is None and cache.get("o-1") is None
    assert cache.get("other") == other  # another organization stays


def test_a_result_fetched_before_an_invalidation_is_not_kept() -> None:
    cache = OrgCache()
    stamp = cache.stamp()  # a lookup by slug starts: it cannot know which organization
    cache.invalidate("o-9")  # meanwhile some organization changed (maybe this one)
    cache.put("acme", _org("o-1", "acme"), stamp)
    assert cache.get("acme") is None
    cache.put("acme", _org("o-1", "acme"), cache.stamp())
    assert cache.get("acme") is not None


def test_bounded_the_oldest_entry_goes() -> None:
    cache = OrgCache(max_entries=2)
    for n in range(3):
        cache.put(f"slug-{n}", _org(f"o-{n}", f"slug-{n}"), cache.stamp())
    assert len(cache) == 2
    assert cache.get("slug-0") is None and cache.get("slug-2") is not None
    cache.invalidate("o-0")  # its index entry went with it: nothing left to drop
    assert len(cache) == 2


def test_a_reference_cached_again_moves_to_its_new_organization() -> None:
    cache = OrgCache()
    cache.put("acme", _org("o-1", "acme"), cache.stamp())
    cache.put("acme", _org("o-2", "acme"), cache.stamp())
    cache.invalidate("o-1")
    found = cache.get("acme")
    assert found is not None and found.id == "o-2"
