"""The in-memory revocation set (ARCHITECTURE.md, tokens and revocation)."""

from datetime import UTC, datetime, timedelta

import pytest

from ostiary.features.oauth.revocation import RevocationSet, issued_at
from ostiary.features.oauth.tokens import microseconds_since_epoch

T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LATER = T + timedelta(minutes=5)


def _claims(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "jti": "j1",
        "iat": int(T.timestamp()),
        "sub": "u1",
        "client_id": "c1",
        "sid": "s1",
    }
    base.update(kw)
    return base


def test_empty_set_revokes_nothing() -> None:
    assert not RevocationSet().is_revoked(_claims())


def test_jti_revocation() -> None:
    revoked = RevocationSet()
    revoked.add("jti", "j1", T, LATER)
    assert revoked.is_revoked(_claims())
    assert not revoked.is_revoked(_claims(jti="j2"))


def test_subject_revocations_apply_only_to_tokens_issued_before() -> None:
    for kind, value in (("sid", "s1"), ("user", "u1"), ("client", "c1"), ("user_client", "u1|c1")):
        revoked = RevocationSet()
        revoked.add(kind, value, T + timedelta(seconds=30), LATER)
        assert revoked.is_revoked(_claims(jti="x")), kind
        newer = _claims(jti="x", iat=int((T + timedelta(seconds=31)).timestamp()))
        assert not revoked.is_revoked(newer), kind


def test_token_without_iat_is_refused_when_anything_is_revoked() -> None:
    revoked = RevocationSet()
    revoked.add("jti", "other", T, LATER)
    assert revoked.is_revoked({"jti": "j1", "sub": "u1"})


def test_prune_drops_expired_entries() -> None:
    revoked = RevocationSet()
    revoked.add("jti", "j1", T, LATER)
    revoked.prune(LATER)
    assert len(revoked) == 0 and not revoked.is_revoked(_claims())


def test_bounded() -> None:
    revoked = RevocationSet(limit=10)
    for i in range(10):
        revoked.add("jti", f"j{i}", T, T + timedelta(seconds=i))
    revoked.add("jti", "new", T + timedelta(seconds=5), LATER)
    assert len(revoked) <= 10 and revoked.is_revoked(_claims(jti="new"))


# -- issuance instants to the microsecond (issue 9, item 3: tokens born revoked) --------------

SECOND = T + timedelta(seconds=30)  # a whole second; the revocation falls inside it


def _issued(at: datetime, **kw: object) -> dict[str, object]:
    """Claims of a token minted at ``at``, as features/oauth/tokens.py writes them."""
    micros = microseconds_since_epoch(at)
    return _claims(jti="x", iat=micros // 1_000_000, ost_iat_us=micros, **kw)


SUBJECT_KINDS = (("sid", "s1"), ("user", "u1"), ("client", "c1"), ("user_client", "u1|c1"))


@pytest.mark.parametrize(("kind", "value"), SUBJECT_KINDS)
def test_same_second_issuance_is_placed_exactly(kind: str, value: str) -> None:
    revoked = RevocationSet()
    revoked_at = SECOND + timedelta(milliseconds=400)
    revoked.add(kind, value, revoked_at, LATER)
    after = _issued(revoked_at + timedelta(microseconds=1))
    assert after["iat"] == int(SECOND.timestamp())  # the same whole second as the revocation
    assert not revoked.is_revoked(after), "a token issued after the revocation is born revoked"
    assert not revoked.is_revoked(_issued(SECOND + timedelta(milliseconds=999)))
    # ... and no rounding opens the opposite window: issued before, in the same second.
    assert revoked.is_revoked(_issued(revoked_at - timedelta(microseconds=1)))
    assert revoked.is_revoked(_issued(SECOND))
    assert revoked.is_revoked(_issued(revoked_at))  # the same microsecond: revoked
    assert not revoked.is_revoked(_issued(SECOND + timedelta(seconds=1)))


@pytest.mark.parametrize(("kind", "value"), SUBJECT_KINDS)
def test_without_the_precise_instant_a_same_second_token_is_revoked(kind: str, value: str) -> None:
    """Tokens minted before the claim existed, or whose claim disagrees with iat."""
    revoked = RevocationSet()
    revoked.add(kind, value, SECOND + timedelta(milliseconds=400), LATER)
    assert revoked.is_revoked(_claims(jti="x", iat=int(SECOND.timestamp())))
    late = microseconds_since_epoch(SECOND + timedelta(milliseconds=700))
    assert revoked.is_revoked(_claims(jti="x", iat=int(SECOND.timestamp()) - 5, ost_iat_us=late))
    assert revoked.is_revoked(_claims(jti="x", iat=int(SECOND.timestamp()), ost_iat_us=str(late)))
    assert not revoked.is_revoked(_claims(jti="x", iat=int(SECOND.timestamp()) + 1))


def test_family_revocation_covers_every_token_of_the_family() -> None:
    revoked = RevocationSet()
    revoked.add("family", "f1", SECOND, LATER)
    assert revoked.is_revoked(_issued(SECOND - timedelta(minutes=1), ost_family="f1"))
    assert revoked.is_revoked(_issued(SECOND + timedelta(minutes=1), ost_family="f1"))
    assert not revoked.is_revoked(_issued(SECOND, ost_family="f2"))
    assert not revoked.is_revoked(_issued(SECOND))  # a token of no family


def test_issued_at_is_exact_for_every_microsecond_of_a_second() -> None:
    for micro in (0, 1, 250_000, 499_999, 500_000, 999_999):
        at = SECOND + timedelta(microseconds=micro)
        assert issued_at(_issued(at)) == at
