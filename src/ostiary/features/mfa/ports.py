"""The stores the MFA feature needs; the SQL adapter is storage/sqla/mfa_repositories.py."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ostiary.features.mfa.models import Passkey, TotpFactor

__all__ = ["PasskeyStore", "RecoveryCodeStore", "TotpStore"]


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


class PasskeyStore(Protocol):
    async def add(self, passkey: Passkey) -> bool:
        """Store a new credential; False when its id is registered already (to anyone)."""
        ...

    async def get(self, credential_id: bytes) -> Passkey | None: ...

    async def list_for_user(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""
        ...

    async def rename(self, user_id: str, credential_id: bytes, name: str) -> bool: ...

    async def delete(self, user_id: str, credential_id: bytes) -> bool: ...

    async def delete_all(self, user_id: str) -> int: ...

    async def record_use(
        self,
        credential_id: bytes,
        *,
        expected_count: int,
        new_count: int,
        backup_state: bool,
        used_at: datetime,
    ) -> bool:
        """Store the new signature counter and flags if the stored counter is still
        ``expected_count``: one compare-and-set, so of two concurrent assertions carrying the
        same counter exactly one wins (WebAuthn Level 3 section 7.2 step 22)."""
        ...

    async def count_among(self, user_ids: list[str]) -> dict[str, int]:
        """Passkeys per user, for users that have any (one query)."""
        ...
