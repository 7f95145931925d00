"""Policy versions, decisions and the decision log's entries (issue 13, sections 2-3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ostiary.features.orgs.models import TenancyError

__all__ = [
    "ApiKeySubject",
    "Decision",
    "LogEntry",
    "LoggedDecision",
    "PolicyRefused",
    "PolicyVersion",
    "Subject",
]


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    organization_id: str  # "" for the deployment-wide policies
    version: int
    policies: str
    schema: str  # the organization's schema extension (Cedar schema syntax)
    note: str
    actor: str | None
    created_at: datetime


@dataclass(slots=True)  # not frozen: see protocol/authzen.py, Entity
class Decision:
    allowed: bool
    reason_admin: str  # which policy decided, or which permission was missing
    reason_user: str

    def response(self) -> dict[str, Any]:
        """The AuthZEN answer (Authorization API 1.0 section 6.2): reasons only on deny."""
        if self.allowed:
            return {"decision": True}
        return {
            "decision": False,
            "context": {
                "reason_admin": {"en": self.reason_admin},
                "reason_user": {"en": self.reason_user},
            },
        }


@dataclass(frozen=True, slots=True)
class Subject:
    """A resolved principal: its Cedar entities (itself first, then its roles and groups),
    its RBAC permissions in the organization, and what the log records of it."""

    entity_type: str
    entity_id: str
    entities: tuple[dict[str, Any], ...]
    permissions: frozenset[str]
    # The principal's key in the decision cache (features/policy/cache.py), "" if not cached.
    cache_key: str = ""


@dataclass(frozen=True, slots=True)
class ApiKeySubject:
    """What an API key stands for (filled by the apikeys feature): its owner, its
    organization and the permissions it is narrowed to."""

    key_id: str
    organization_id: str
    owner_type: str  # "user" | "service_account"
    owner_id: str
    permissions: frozenset[str]


@dataclass(slots=True)  # not frozen: see protocol/authzen.py, Entity
class LogEntry:
    """A decision for the log, before it is written (features/policy/decision_log.py)."""

    organization_id: str
    at: datetime
    expires_at: datetime
    request: dict[str, Any]
    decision: bool
    reason: str

    def logged(self) -> LoggedDecision:
        """As dry-run reads it; id 0: not written yet."""
        return LoggedDecision(
            0, self.organization_id, self.at, self.request, self.decision, self.reason
        )


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    id: int
    organization_id: str
    at: datetime
    request: dict[str, Any]
    decision: bool
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)

    def shown(self) -> dict[str, Any]:
        """As audits show it (the management API, the CLI): the request's parts, and the
        caller's address and authentication context under ``caller``. Rows of any age: a
        missing or malformed part is empty."""

        def part(name: str) -> dict[str, Any]:
            value = self.request.get(name)
            return value if isinstance(value, dict) else {}

        env = part("env")
        return {
            "id": self.id,
            "at": self.at,
            "decision": self.decision,
            "reason": self.reason,
            "subject": part("subject"),
            "action": part("action"),
            "resource": part("resource"),
            "context": part("context"),
            "caller": {k: env.get(k) for k in ("ip", "acr", "amr")},
        }


class PolicyRefused(TenancyError):
    """A policy set or schema Cedar refuses; the message carries the validator's text and the
    line."""

    code = "invalid_policy"
