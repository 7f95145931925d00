"""RevocationService.sync: the database poll's place among ids that commit out of order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ostiary.features.clock import FrozenClock
from ostiary.features.oauth.models import RevocationKind
from ostiary.features.oauth.revocation import (
    UNSEEN_JUMP,
    UNSEEN_WAIT,
    RevocationService,
    RevocationSet,
)

Row = tuple[int, RevocationKind, str, datetime, datetime]
T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class CommittedRows:
    """The rows other transactions have committed so far (ids in any order)."""

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.asked: list[tuple[int, tuple[int, ...]]] = []

    def commit(self, row_id: int) -> None:
        self.rows[row_id] = (row_id, "jti", f"j{row_id}", T, T + timedelta(hours=1))

    async def add(
        self, kind: RevocationKind, value: str, revoked_at: datetime, expires_at: datetime
    ) -> None:
        raise AssertionError("not used")

    async def since(self, after_id: int, now: datetime, also: Sequence[int] = ()) -> list[Row]:
        self.asked.append((after_id, tuple(also)))
        return [
            row
            for row_id, row in sorted(self.rows.items())
            if (row_id > after_id or row_id in also) and row[4] > now
        ]


def _service() -> tuple[RevocationService, RevocationSet, CommittedRows, FrozenClock]:
    store, revoked, clock = CommittedRows(), RevocationSet(), FrozenClock(T)
    return (
        RevocationService(store, revoked, clock, horizon=timedelta(hours=1)),
        revoked,
        store,
        clock,
    )


def _has(revoked: RevocationSet, row_id: int) -> bool:
    return revoked.is_revoked({"jti": f"j{row_id}"})


async def test_an_id_committed_after_a_larger_one_is_loaded() -> None:
    service, revoked, store, _ = _service()
    store.commit(1)
    assert await service.sync() == 1
    store.commit(3)  # id 2 is still in an open transaction
    assert await service.sync() == 1
    assert revoked.last_id == 3 and set(revoked.unseen_ids) == {2}
    store.commit(2)
    assert await service.sync() == 1
    assert _has(revoked, 2) and revoked.unseen_ids == {}
    assert await service.sync() == 0
    assert store.asked[-1] == (3, ())


async def test_a_rolled_back_id_is_forgotten_after_the_wait() -> None:
    service, revoked, store, clock = _service()
    store.commit(1)
    store.commit(3)
    await service.sync()
    assert set(revoked.unseen_ids) == {2}
    clock.advance(UNSEEN_WAIT)
    await service.sync()
    assert store.asked[-1] == (3, (2,))  # still asked for
    clock.advance(timedelta(seconds=1))
    await service.sync()
    assert store.asked[-1] == (3, ()) and revoked.unseen_ids == {}


async def test_the_ids_asked_for_again_are_bounded() -> None:
    service, revoked, store, _ = _service()
    store.commit(1)
    store.commit(5 * UNSEEN_JUMP)
    await service.sync()
    assert len(revoked.unseen_ids) == UNSEEN_JUMP
    assert min(revoked.unseen_ids) == 4 * UNSEEN_JUMP
