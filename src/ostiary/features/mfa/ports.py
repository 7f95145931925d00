"""The stores the MFA feature needs; the SQL adapter is storage/sqla/mfa_repositories.py."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ostiary.features.mfa.models import TotpFactor

__all__ = ["RecoveryCodeStore", "TotpStore"]


class TotpStore(Protocol):
    async def get(self, user_id: str) -> TotpFactor | None: ...

    async def put_pending(self, factor: TotpFactor) -> None:
        """Start (or restart) an enrollment: replaces a pending factor, never an active one."""
        ...

    async def confirm(self, user_id: str, confirmed_at: datetime, step: int) -> bool:
        """Activate the pending factor, recording ``step`` as used; False if not pending."""
        ...

    async def use_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as used if it is later than the last one: one atomic
        compare-and-set, so of concurrent submissions of one code exactly one wins."""
        ...

    async def delete(self, user_id: str) -> bool: ...

    async def active_among(self, user_ids: list[str]) -> set[str]:
        """Which of these users have a confirmed factor (one query)."""
        ...


class RecoveryCodeStore(Protocol):
    async def replace(self, user_id: str, digests: list[str], created_at: datetime) -> None:
        """The user's codes are now exactly these (the old set is gone)."""
        ...

    async def consume(self, user_id: str, digest: str, used_at: datetime) -> bool:
        """Mark one unused code used; False when it is unknown or already used (atomic)."""
        ...

    async def remaining(self, user_id: str) -> int: ...

    async def delete_all(self, user_id: str) -> int: ...

    async def remaining_among(self, user_ids: list[str]) -> dict[str, int]:
        """Unused codes per user, for users that have any (one query)."""
        ...
