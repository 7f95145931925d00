"""An invitation to join an organization, and the refusals of accepting one. Errors are
``TenancyError`` subclasses, so the CLI and the management API map them as they map every
other tenancy refusal (stable ``code``, a message for people)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ostiary.features.orgs.models import TenancyError

__all__ = [
    "Invitation",
    "InvitationGone",
    "InvitationState",
    "IssuedInvitation",
    "MailStatus",
    "Status",
    "WrongInvitee",
]

Status = Literal["pending", "accepted", "revoked"]
MailStatus = Literal["unsent", "sent", "failed"]
InvitationState = Literal["pending", "expired", "accepted", "revoked"]


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    organization_id: str
    email: str  # normalized (features/accounts normalize_email)
    roles: tuple[str, ...]  # role ids (built-in names or custom role ids), organization level
    inviter_id: str | None  # None: the CLI operator
    status: Status
    mail_status: MailStatus
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    accepted_by: str | None = None

    def state(self, now: datetime) -> InvitationState:
        if self.status != "pending":
            return self.status
        return "pending" if now < self.expires_at else "expired"


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    """A fresh invitation and its token, which exists nowhere else: shown (mailed) once."""

    invitation: Invitation
    token: str


class InvitationGone(TenancyError):
    """Unknown, expired, revoked or already accepted: ``reason`` says which (the page tells
    the person; nothing about the organization is revealed for an unknown token)."""

    code = "invitation_gone"

    def __init__(self, reason: Literal["unknown", "expired", "accepted", "revoked"]) -> None:
        messages = {
            "unknown": "This invitation link is not valid.",
            "expired": "This invitation has expired. Ask for a new one.",
            "accepted": "This invitation has already been used.",
            "revoked": "This invitation was withdrawn. Ask for a new one if you need it.",
        }
        super().__init__(messages[reason])
        self.reason = reason


class WrongInvitee(TenancyError):
    """The signed-in account's e-mail address is not the invited one."""

    code = "wrong_email"
