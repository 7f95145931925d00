"""The stores the policy feature needs (SQL adapter: storage/sqla/policy_repositories.py) and
the seams other features fill: user and API-key directories. Every method names the
organization ("" for deployment-wide policies) and is scoped by it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ostiary.features.policy.models import ApiKeySubject, LogEntry, LoggedDecision, PolicyVersion

__all__ = [
    "ApiKeyDirectory",
    "DecisionLogSink",
    "DecisionLogStore",
    "PolicyStore",
    "UserDirectory",
]


class PolicyStore(Protocol):
    async def add_version(self, version: PolicyVersion) -> bool:
        """Insert; False if that version number exists (a concurrent change)."""
        ...

    async def latest_version(self, org_id: str) -> PolicyVersion | None:
        """The active version: the newest one."""
        ...

    async def get_version(self, org_id: str, version: int) -> PolicyVersion | None: ...

    async def list_versions(
        self, org_id: str, limit: int, before: int | None = None
    ) -> list[PolicyVersion]:
        """Newest first (only versions below ``before`` when given), without their texts'
        cost mattering (they are small)."""
        ...


class DecisionLogStore(Protocol):
    async def append(self, entry: LogEntry) -> None: ...

    async def append_many(self, entries: Sequence[LogEntry]) -> None:
        """One multi-row INSERT (features/policy/decision_log.py writes its batches so)."""
        ...

    async def recent(
        self,
        org_id: str,
        limit: int,
        *,
        before: int | None = None,
        decision: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LoggedDecision]:
        """The newest ``limit`` decisions of the organization, newest first; only those
        written before the entry ``before`` (the next page), with that outcome, and at or
        after ``since`` and before ``until``, when given."""
        ...


class DecisionLogSink(Protocol):
    """Where a decision goes off the request path (features/policy/decision_log.py)."""

    def offer(self, entry: LogEntry) -> bool:
        """True if taken; False: write it inline."""
        ...

    def pending(self, org_id: str) -> list[LogEntry]:
        """The organization's entries not written yet, newest first."""
        ...


class UserDirectory(Protocol):
    async def find_user(self, ref: str) -> tuple[str, str] | None:
        """(user id, email) of an enabled user named by id or e-mail address, else None."""
        ...


class ApiKeyDirectory(Protocol):
    """API keys and service accounts as decision subjects (features/apikeys, adapted in
    web/runtime.py)."""

    async def api_key(self, org_id: str, key_id: str) -> ApiKeySubject | None:
        """A live key of the organization by id, as a decision subject."""
        ...

    async def service_account_active(self, org_id: str, account_id: str) -> bool:
        """The service account exists in the organization and is not disabled."""
        ...
