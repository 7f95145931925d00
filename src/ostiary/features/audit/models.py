"""Audit events as stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["AuditEvent", "AuditQuery", "Outcome"]

Outcome = Literal["success", "failure"]


@dataclass(slots=True)
class AuditEvent:
    occurred_at: datetime
    action: str
    outcome: Outcome
    actor: str | None = None
    target: str | None = None
    ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    organization_id: str | None = None
    seq: int | None = None
    previous_hash: str = ""
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """The fields the chain hash covers (everything but the hashes and the sequence)."""
        return {
            "occurred_at": self.occurred_at.isoformat(timespec="microseconds"),
            "action": self.action,
            "outcome": self.outcome,
            "actor": self.actor,
            "target": self.target,
            "ip": self.ip,
            "details": self.details,
            "organization_id": self.organization_id,
        }


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which events to read, newest first: one organization's slice (or the whole trail when
    ``organization_id`` is None), older than the event ``before`` (the next page), and only
    those matching each filter given (``since`` inclusive, ``until`` exclusive)."""

    organization_id: str | None = None
    before: int | None = None
    action: str | None = None
    actor: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
