"""Recording and verifying audit events (hash chain from ``ostiary.protocol.audit_chain``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ostiary.features.audit.models import AuditEvent, AuditQuery, Outcome
from ostiary.features.audit.ports import AuditStore
from ostiary.features.clock import Clock
from ostiary.protocol.audit_chain import ChainLink, ChainVerifier, chain_hash
from ostiary.protocol.masking import redact

__all__ = ["MAX_SEARCH", "AuditTrail", "ChainReport"]

MAX_SEARCH = 1000


def link_event(event: AuditEvent, previous_hash: str) -> None:
    event.previous_hash = previous_hash
    event.hash = chain_hash(previous_hash, event.body())


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    broken_at: int | None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


class AuditTrail:
    """Writes redacted events into the chain and checks the chain end to end."""

    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def org_change(
        self, action: str, org_id: str, actor: str | None, target: str, **details: object
    ) -> AuditEvent:
        """A successful change inside an organization (the tenancy features' one shape):
        filed under the organization, with its id among the details."""
        return await self.record(
            action,
            "success",
            actor=actor,
            target=target,
            details={"organization_id": org_id, **details},
        )

    async def record(
        self,
        action: str,
        outcome: Outcome,
        *,
        actor: str | None = None,
        target: str | None = None,
        ip: str | None = None,
        details: dict[str, Any] | None = None,
        organization_id: str | None = None,
    ) -> AuditEvent:
        """Append an event. ``organization_id`` (by default the ``organization_id`` of
        ``details``, which every tenancy use case records) files it under that organization's
        slice of the trail."""
        details = details or {}
        if organization_id is None and isinstance(details.get("organization_id"), str):
            organization_id = details["organization_id"]
        event = AuditEvent(
            occurred_at=self._clock.now(),
            action=action,
            outcome=outcome,
            actor=actor,
            target=target,
            ip=ip,
            details=redact(details),
            organization_id=organization_id,
        )
        return await self._store.append(event, link_event)

    async def search(self, query: AuditQuery, limit: int = 50) -> list[AuditEvent]:
        """Events matching ``query``, newest first, at most ``limit`` (1 to 1000)."""
        if not 1 <= limit <= MAX_SEARCH:
            raise ValueError(f"limit must be 1 to {MAX_SEARCH}")
        return await self._store.search(query, limit)

    async def verify(self) -> ChainReport:
        """Walk the whole trail; report how many events were checked and the first bad one."""
        verifier = ChainVerifier()
        checked = 0
        async for event in self._store.scan():
            link = ChainLink(event.seq or 0, event.previous_hash, event.hash, event.body())
            if not verifier.check(link):
                return ChainReport(checked=checked, broken_at=link.seq)
            checked += 1
        return ChainReport(checked=checked, broken_at=None)
