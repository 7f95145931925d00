"""What a verified access token says (RFC 9068 section 2.2, RFC 7662 section 2.2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["VerifiedToken"]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token that passed every check.

    ``claims`` is the JWT claims set (or, for an opaque token, the introspection answer);
    ``header`` the JWS protected header (empty for an opaque token). ``scopes`` is the
    space-separated ``scope`` claim split into a set (RFC 9068 section 2.2.3). ``introspected``
    tells whether the authorization server confirmed just now that the token is still active.
    """

    claims: dict[str, Any]
    subject: str
    client_id: str
    scopes: frozenset[str]
    expires_at: datetime | None
    jti: str | None
    sid: str | None
    header: dict[str, Any]
    introspected: bool = False
