"""The port of the retention feature: a set of records, each with an expiry instant."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["ExpiringRecords"]


class ExpiringRecords(Protocol):
    async def purge_expired(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` records that expired before ``before``; how many went.

        Records another node is deleting at the same moment are skipped, not waited for."""
        ...
