"""The in-memory revocation set (ARCHITECTURE.md, tokens and revocation)."""

from datetime import UTC, datetime, timedelta

from ostiary.features.oauth.revocation import RevocationSet

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
