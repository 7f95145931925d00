"""The store invitations need (SQL adapter: storage/sqla/invitation_repositories.py). Every
method but the lookup by token digest takes the organization id and is scoped by it; the
digest is unguessable and names its organization's row."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ostiary.features.invitations.models import Invitation, MailStatus, Status
from ostiary.features.orgs.models import Cursor

__all__ = ["InvitationStore"]


class InvitationStore(Protocol):
    async def add(self, invitation: Invitation, token_hash: str) -> None: ...

    async def get(self, org_id: str, invitation_id: str) -> Invitation | None: ...

    async def get_by_token_hash(self, token_hash: str) -> Invitation | None: ...

    async def list_invitations(
        self, org_id: str, limit: int, after: Cursor | None, status: Status | None
    ) -> list[Invitation]: ...

    async def pending_for(self, org_id: str, email: str) -> list[Invitation]:
        """Pending invitations of this address in the organization (expired ones too)."""
        ...

    async def end(
        self,
        org_id: str,
        invitation_id: str,
        status: Status,
        now: datetime,
        *,
        accepted_by: str | None = None,
        unexpired_at: datetime | None = None,
    ) -> bool:
        """Compare-and-set from pending to ``status``; with ``unexpired_at``, only if not
        expired then. True for the one caller that changed it."""
        ...

    async def reissue(
        self, org_id: str, invitation_id: str, token_hash: str, expires_at: datetime
    ) -> bool:
        """A pending invitation's new token and expiry (the old token stops working)."""
        ...

    async def set_mail_status(
        self, org_id: str, invitation_id: str, status: MailStatus
    ) -> None: ...
