"""ostiary.protocol.keyring: OIDC Core 10.1.1 rotation windows, one chain per algorithm."""

from datetime import UTC, datetime, timedelta

from ostiary.protocol.keyring import KeyWindow, SigningKeyRing

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=60)


def _key(
    kid: str,
    created: datetime,
    activates: datetime,
    alg: str = "ES256",
    retired: datetime | None = None,
) -> KeyWindow:
    return KeyWindow(kid, alg, created, activates, retired)


def _ring(*keys: KeyWindow) -> SigningKeyRing:
    return SigningKeyRing(keys, max_token_ttl=TTL)


def _active(ring: SigningKeyRing, at: datetime, alg: str = "ES256") -> str | None:
    window = ring.active_at(at, alg)
    return window.kid if window else None


def _published(ring: SigningKeyRing, at: datetime) -> list[str]:
    return [k.kid for k in ring.published_at(at)]


def test_no_key_is_active_before_the_first_activation() -> None:
    ring = _ring(_key("a", T0, T0 + timedelta(minutes=10)))
    assert _active(ring, T0) is None
    assert _active(ring, T0 + timedelta(minutes=10)) == "a"


def test_active_key_is_the_latest_activated_one() -> None:
    a = _key("a", T0, T0)
    b = _key("b", T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=10))
    c = _key("c", T0 + timedelta(days=2), T0 + timedelta(days=2, minutes=10))
    ring = _ring(c, a, b)  # order of input does not matter
    assert _active(ring, T0 + timedelta(hours=1)) == "a"
    # b is published but still in its lead time: a keeps signing.
    assert _active(ring, T0 + timedelta(days=1, minutes=5)) == "a"
    assert _active(ring, T0 + timedelta(days=1, minutes=10)) == "b"
    assert _active(ring, T0 + timedelta(days=9)) == "c"


def test_a_new_key_is_published_before_it_signs() -> None:
    a = _key("a", T0, T0)
    b = _key("b", T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=10))
    ring = _ring(a, b)
    during_lead = T0 + timedelta(days=1, minutes=1)
    assert _published(ring, during_lead) == ["b", "a"]
    assert _active(ring, during_lead) == "a"


def test_a_key_is_not_published_before_it_exists() -> None:
    a = _key("a", T0, T0)
    b = _key("b", T0 + timedelta(days=1), T0 + timedelta(days=1))
    assert _published(_ring(a, b), T0 + timedelta(hours=1)) == ["a"]


def test_retired_key_stays_published_until_its_last_token_expires() -> None:
    a = _key("a", T0, T0)
    switch = T0 + timedelta(days=1)
    b = _key("b", switch - timedelta(minutes=10), switch)
    ring = _ring(a, b)
    assert ring.retired_at("a") == switch
    assert ring.retired_at("b") is None
    # A token signed by "a" just before the switch lives until switch + TTL.
    assert "a" in _published(ring, switch + TTL - timedelta(seconds=1))
    assert "a" not in _published(ring, switch + TTL)


def test_unknown_kid_has_no_retirement() -> None:
    assert _ring(_key("a", T0, T0)).retired_at("zzz") is None


def test_each_algorithm_has_its_own_active_key() -> None:
    es = _key("es", T0, T0, "ES256")
    rs = _key("rs", T0, T0 + timedelta(seconds=1), "RS256")
    ed = _key("ed", T0, T0 + timedelta(seconds=2), "EdDSA")
    ring = _ring(es, rs, ed)
    later = T0 + timedelta(days=1)
    # The latest activated key overall (EdDSA) does not sign the other algorithms' tokens.
    assert [_active(ring, later, alg) for alg in ("ES256", "RS256", "EdDSA")] == [
        "es",
        "rs",
        "ed",
    ]
    assert _published(ring, later) == ["ed", "rs", "es"]
    assert _active(ring, later, "HS256") is None


def test_rotating_one_algorithm_leaves_the_others_untouched() -> None:
    es = _key("es", T0, T0, "ES256")
    ed = _key("ed", T0, T0, "EdDSA")
    rs1 = _key("rs1", T0, T0, "RS256")
    switch = T0 + timedelta(days=1)
    rs2 = _key("rs2", switch - timedelta(minutes=10), switch, "RS256")
    ring = _ring(es, ed, rs1, rs2)
    for at in (switch - timedelta(seconds=1), switch, switch + TTL * 2):
        assert _active(ring, at, "ES256") == "es"
        assert _active(ring, at, "EdDSA") == "ed"
    assert _active(ring, switch, "RS256") == "rs2"
    # Only rs1 retires: published while its tokens live, and the others stay published.
    assert ring.retired_at("rs1") == switch and ring.retired_at("es") is None
    assert set(_published(ring, switch + TTL - timedelta(seconds=1))) == {"es", "ed", "rs1", "rs2"}
    assert set(_published(ring, switch + TTL)) == {"es", "ed", "rs2"}


def test_an_explicitly_retired_key_signs_no_more_and_leaves_jwks_after_its_tokens() -> None:
    """A key the old single-algorithm switch retired (migration 0006 sets ``retired_at``)
    does not become its algorithm's signer again."""
    switch = T0 + timedelta(days=1)
    es = _key("es", T0, T0, "ES256", retired=switch)
    rs = _key("rs", switch - timedelta(minutes=10), switch, "RS256")
    ring = _ring(es, rs)
    assert _active(ring, switch - timedelta(seconds=1), "ES256") == "es"
    assert _active(ring, switch, "ES256") is None
    assert not ring.usable("ES256") and ring.usable("RS256") and not ring.usable("EdDSA")
    assert ring.retired_at("es") == switch
    assert "es" in _published(ring, switch + TTL - timedelta(seconds=1))
    assert "es" not in _published(ring, switch + TTL)
    # A fresh ES256 key follows it in its chain and signs.
    fresh = _key("es2", switch + TTL, switch + TTL, "ES256")
    ring = _ring(es, rs, fresh)
    assert _active(ring, switch + TTL, "ES256") == "es2" and ring.usable("ES256")
