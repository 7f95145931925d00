"""Stores the audit trail needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ostiary.features.audit.models import AuditEvent, AuditQuery

__all__ = ["AuditStore", "ChainLinker"]


class ChainLinker(Protocol):
    def __call__(self, event: AuditEvent, previous_hash: str) -> None: ...


class AuditStore(Protocol):
    async def append(self, event: AuditEvent, link: ChainLinker) -> AuditEvent:
        """Store ``event`` after the current last one, serialized against other appenders.

        The store fetches the previous hash under its lock and calls ``link(event, previous)``
        to fill ``previous_hash`` and ``hash`` before inserting.
        """
        ...

    def scan(self, batch_size: int = 1000) -> AsyncIterator[AuditEvent]:
        """All events in append order."""
        ...

    async def recent(self, limit: int, actor: str | None = None) -> list[AuditEvent]: ...

    async def search(self, query: AuditQuery, limit: int) -> list[AuditEvent]:
        """Up to ``limit`` events matching ``query``, newest first."""
        ...
