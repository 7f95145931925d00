"""features/policy/cache.py: entries valid while their counters stand still, each kind of key
moving exactly what it names, and the bounds."""

from __future__ import annotations

from ostiary.features.policy.cache import DecisionCache


def test_keys_move_what_they_name() -> None:
    cache = DecisionCache()
    org_stamp = cache.stamp("o1")
    alice = cache.stamp("o1", "user|alice")
    cache.subjects.put(("o1", "user|alice"), "alice-entities", alice)
    cache.subjects.put(("o1", "user|bob"), "bob-entities", cache.stamp("o1", "user|bob"))
    cache.programs.put("o1", "program", org_stamp)
    cache.programs.put("o2", "other", cache.stamp("o2"))

    cache.invalidate("o1|user|alice")  # one principal: only that principal's subject
    assert cache.subjects.get(("o1", "user|alice"), cache.stamp("o1", "user|alice")) is None
    assert cache.subjects.get(("o1", "user|bob"), cache.stamp("o1", "user|bob")) == "bob-entities"
    assert cache.programs.get("o1", cache.stamp("o1")) == "program"

    cache.invalidate("o1|*")  # the organization: everything of it, nothing of o2
    assert cache.programs.get("o1", cache.stamp("o1")) is None
    assert cache.subjects.get(("o1", "user|bob"), cache.stamp("o1", "user|bob")) is None
    assert cache.programs.get("o2", cache.stamp("o2")) == "other"

    cache.invalidate("*")  # deployment-wide: everything
    assert cache.programs.get("o2", cache.stamp("o2")) is None


def test_a_stamp_read_before_an_invalidation_never_serves_after_it() -> None:
    cache = DecisionCache()
    stamp = cache.stamp("o1")  # read before computing ...
    cache.invalidate("o1|*")  # ... a change lands meanwhile ...
    cache.programs.put("o1", "stale", stamp)  # ... and the stale result is stored
    assert cache.programs.get("o1", cache.stamp("o1")) is None


def test_bounds() -> None:
    cache = DecisionCache(max_entries=20, max_counters=3)
    for i in range(50):
        cache.subjects.put(("o", str(i)), i, cache.stamp("o", str(i)))
    assert len(cache.subjects) == 20
    assert cache.subjects.get(("o", "49"), cache.stamp("o", "49")) == 49
    assert cache.subjects.get(("o", "0"), cache.stamp("o", "0")) is None  # the oldest went
    kept = cache.stamp("o", "49")
    for i in range(4):  # more counters than allowed: everything is dropped, safely
        cache.invalidate(f"o|user|{i}")
    assert cache.stamp("o", "49") != kept
    assert len(cache.subjects) == 0


def test_known_users_age_out_and_refuse_a_read_older_than_a_change() -> None:
    from ostiary.features.cache import Generations
    from ostiary.features.policy.cache import KnownUsers

    now = [100.0]
    gens = Generations()
    known = KnownUsers(gens, max_age=30.0, monotonic=lambda: now[0])
    stamp = known.stamp("u1")
    gens.bump("u1")  # the user changed while the read was on its way
    known.put("u1", ("u1", "old@example.com"), stamp)
    assert known.get("u1") is None
    known.put("u1", ("u1", "new@example.com"), known.stamp("u1"))
    assert known.get("u1") == ("u1", "new@example.com")
    now[0] += 31  # older than max_age (less than the token horizon a revocation is held)
    assert known.get("u1") is None
