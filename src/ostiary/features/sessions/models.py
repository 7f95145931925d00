"""Server-side session records.

The cookie carries a 256-bit random secret; the store keeps only its HMAC (``token_hash``),
so a database or Redis dump cannot be replayed as cookies (OWASP Session Management Cheat
Sheet, "Session ID Entropy" and storage). ``sid`` is a separate public handle used in the
account page and, later, as the ``sid`` claim of tokens (OpenID Front-/Back-Channel Logout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Session"]


@dataclass(slots=True)
class Session:
    sid: str
    token_hash: str
    user_id: str
    created_at: datetime
    auth_time: datetime
    last_seen: datetime
    expires_at: datetime
    amr: list[str] = field(default_factory=list)
    ip: str | None = None
    user_agent: str | None = None
