"""Organizations (the B2B tenants), their projects and memberships (ARCHITECTURE.md, "Tenancy
model": users are global; an organization owns everything below it), the error type every
tenancy and RBAC use case raises, and the opaque keyset cursors of listings."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import datetime

from ostiary.protocol.signed_fields import b64url_decode, b64url_encode

__all__ = [
    "Conflict",
    "Cursor",
    "Forbidden",
    "InvalidInput",
    "LastOwner",
    "Membership",
    "NotAMember",
    "NotFound",
    "Organization",
    "Project",
    "TenancyError",
    "decode_cursor",
    "encode_cursor",
]


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime
    # An acr class (protocol/oidc.py) every sign-in must reach before an org-scoped client
    # gets a code for this organization; None: no requirement.
    require_acr: str | None = None
    # The operator's name for the organization's plan (``free``, ``enterprise``...), which
    # policies see as ``principal.plan``; None: none. Not the organization's own to change.
    plan: str | None = None


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    organization_id: str
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    organization_id: str
    user_id: str
    created_at: datetime


class TenancyError(Exception):
    """A refused tenancy or RBAC use case. ``code`` is stable (the management API maps it to
    its JSON errors); the message is for people and never names another organization's data."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(TenancyError):
    """Absent, or another organization's (never reveal which)."""

    code = "not_found"


class Conflict(TenancyError):
    code = "conflict"


class InvalidInput(TenancyError):
    code = "invalid"


class LastOwner(TenancyError):
    code = "last_owner"


class NotAMember(TenancyError):
    code = "not_a_member"


class Forbidden(TenancyError):
    code = "forbidden"


# A listing's place: the (created_at, id) of the last item returned (keyset paging).
Cursor = tuple[datetime, str]


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return b64url_encode(raw)


def decode_cursor(cursor: str | None) -> Cursor | None:
    """The place a cursor names; ``InvalidInput`` for anything we did not hand out."""
    if not cursor:
        return None
    try:
        raw = b64url_decode(cursor).decode()
        stamp, sep, item_id = raw.partition("|")
        when = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("invalid cursor") from None
    if not sep or not item_id or when.tzinfo is None or len(item_id) > 100:
        raise InvalidInput("invalid cursor")
    return when, item_id
