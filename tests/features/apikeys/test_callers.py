"""features/apikeys/callers.py: entries by digest, replaced in place, bounded (the oldest goes
first). What an entry rests on is checked by the verifier: tests/web/test_api_key_caller_nodes.py."""

from __future__ import annotations

from datetime import UTC, datetime

from ostiary.features.apikeys.callers import KnownCaller, KnownCallers
from ostiary.features.apikeys.models import ApiKeyPrincipal
from tests.features.apikeys.test_key_cache import _row

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _caller(key_id: str) -> KnownCaller:
    principal = ApiKeyPrincipal(
        key_id, "o1", "service_account", "sa", None, frozenset({"keys:verify"}), (), (), None
    )
    return KnownCaller(principal, _row(key_id), 0, (0, 0, 0), None)


def test_entries_by_digest_replaced_in_place_and_bounded() -> None:
    callers = KnownCallers(max_entries=2)
    first, second, third = _caller("k1"), _caller("k2"), _caller("k3")
    callers.put("d1", first)
    callers.put("d2", second)
    callers.put("d1", third)  # the same digest: replaced, nothing evicted
    assert len(callers) == 2 and callers.get("d1") is third
    callers.put("d3", first)  # full: the oldest goes
    assert callers.get("d1") is None and callers.get("d2") is second
    callers.discard("d2")
    assert callers.get("d2") is None and len(callers) == 1
    callers.clear()
    assert len(callers) == 0
