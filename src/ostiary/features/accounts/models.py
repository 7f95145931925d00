"""Users: global identities (ARCHITECTURE.md, tenancy model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["User", "normalize_email"]


def normalize_email(email: str) -> str:
    """Case-insensitive identity of an address: trimmed and lower-cased (RFC 5321 section 2.4
    allows case-sensitive local parts, but every mainstream provider treats them as equal)."""
    return email.strip().lower()


@dataclass(slots=True)
class User:
    id: str
    email: str
    name: str
    created_at: datetime
    updated_at: datetime
    password_hash: str | None = None
    email_verified: bool = False
    disabled: bool = False
    # The other standard claims of OIDC Core section 5.1 (protocol/claims.py EDITABLE_CLAIMS),
    # validated; only those with a value are present.
    claims: dict[str, Any] = field(default_factory=dict)
