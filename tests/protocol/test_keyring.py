"""ostiary.protocol.keyring: OIDC Core 10.1.1 rotation windows."""

from datetime import UTC, datetime, timedelta

from ostiary.protocol.keyring import KeyWindow, SigningKeyRing

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=60)


def _ring(*keys: KeyWindow) -> SigningKeyRing:
    return SigningKeyRing(keys, max_token_ttl=TTL)


def test_no_key_is_active_before_the_first_activation() -> None:
    ring = _ring(KeyWindow("a", T0, T0 + timedelta(minutes=10)))
    assert ring.active_at(T0) is None
    assert ring.active_at(T0 + timedelta(minutes=10)).kid == "a"  # type: ignore[union-attr]


def test_active_key_is_the_latest_activated_one() -> None:
    a = KeyWindow("a", T0, T0)
    b = KeyWindow("b", T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=10))
    c = KeyWindow("c", T0 + timedelta(days=2), T0 + timedelta(days=2, minutes=10))
    ring = _ring(c, a, b)  # order of input does not matter
    assert ring.active_at(T0 + timedelta(hours=1)).kid == "a"  # type: ignore[union-attr]
    # b is published but still in its lead time: a keeps signing.
    assert ring.active_at(T0 + timedelta(days=1, minutes=5)).kid == "a"  # type: ignore[union-attr]
    assert ring.active_at(T0 + timedelta(days=1, minutes=10)).kid == "b"  # type: ignore[union-attr]
    assert ring.active_at(T0 + timedelta(days=9)).kid == "c"  # type: ignore[union-attr]


def test_a_new_key_is_published_before_it_signs() -> None:
    a = KeyWindow("a", T0, T0)
    b = KeyWindow("b", T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=10))
    ring = _ring(a, b)
    during_lead = T0 + timedelta(days=1, minutes=1)
    assert [k.kid for k in ring.published_at(during_lead)] == ["b", "a"]
    assert ring.active_at(during_lead).kid == "a"  # type: ignore[union-attr]


def test_a_key_is_not_published_before_it_exists() -> None:
    a = KeyWindow("a", T0, T0)
    b = KeyWindow("b", T0 + timedelta(days=1), T0 + timedelta(days=1))
    assert [k.kid for k in _ring(a, b).published_at(T0 + timedelta(hours=1))] == ["a"]


def test_retired_key_stays_published_until_its_last_token_expires() -> None:
    a = KeyWindow("a", T0, T0)
    switch = T0 + timedelta(days=1)
    b = KeyWindow("b", switch - timedelta(minutes=10), switch)
    ring = _ring(a, b)
    assert ring.retired_at("a") == switch
    assert ring.retired_at("b") is None
    # A token signed by "a" just before the switch lives until switch + TTL.
    assert "a" in [k.kid for k in ring.published_at(switch + TTL - timedelta(seconds=1))]
    assert "a" not in [k.kid for k in ring.published_at(switch + TTL)]


def test_unknown_kid_has_no_retirement() -> None:
    assert _ring(KeyWindow("a", T0, T0)).retired_at("zzz") is None
