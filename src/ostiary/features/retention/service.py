"""Deleting what has expired, in bounded batches, on every node (ASVS 5.0 V14.2: keep data no
longer than needed).

Each kind of record is kept past its own expiry for as long as it still guards something:

- revocations: their ``expires_at`` already is the end of the last token they cover
  (features/oauth/revocation.py), so they go when it passes;
- authorization codes and refresh-token families: a spent code or refresh token that comes
  back must still revoke what it issued (RFC 6749 section 4.1.2, RFC 9700 section 4.14.2), and
  the access tokens it issued live up to the longest token lifetime after the code or family
  expired; they are kept that much longer (``keep_after_expiry``). A family's refresh tokens
  go with it (ON DELETE CASCADE);
- sessions (SQL store; Redis expires its own) and client-assertion ids (RFC 7523 section 3:
  replay is judged within the assertion's lifetime) go at expiry.

One batch is one transaction, short enough not to hold locks for long; ``purge_batch`` says
whether another batch has work left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ostiary.features.clock import Clock
from ostiary.features.retention.ports import ExpiringRecords

__all__ = ["RetentionRule", "RetentionService"]


@dataclass(frozen=True, slots=True)
class RetentionRule:
    kind: str  # "revocations", "authorization_codes", ...: names the kind in logs and counts
    records: ExpiringRecords
    keep_after_expiry: timedelta = timedelta(0)


class RetentionService:
    def __init__(self, rules: list[RetentionRule], clock: Clock, *, batch: int = 1_000) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._rules = rules
        self._clock = clock
        self._batch = batch

    async def purge_batch(self, kinds: frozenset[str] | None = None) -> tuple[dict[str, int], bool]:
        """Delete up to one batch of each kind (of ``kinds``, default all): (deleted per kind,
        whether a kind filled its batch and so may have more)."""
        now = self._clock.now()
        deleted: dict[str, int] = {}
        more = False
        for rule in self._rules:
            if kinds is not None and rule.kind not in kinds:
                continue
            count = await rule.records.purge_expired(now - rule.keep_after_expiry, self._batch)
            deleted[rule.kind] = count
            more = more or count >= self._batch
        return deleted, more
