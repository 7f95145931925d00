"""Server-side session records.

The cookie carries a 256-bit random secret; the store keeps only its HMAC (``token_hash``),
so a database or Redis dump cannot be replayed as cookies (OWASP Session Management Cheat
Sheet, "Session ID Entropy" and storage). ``sid`` is a separate public handle used in the
account page and, later, as the ``sid`` claim of tokens (OpenID Front-/Back-Channel Logout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Session", "decode_factor_times", "encode_factor_times"]


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
    # When each method of ``amr`` was used (RFC 8176 names; "mfa" is not a method of its own).
    # A step-up adds a factor later than the others. Empty for sessions stored before this
    # was kept (migration 0011): then every method counts as used at ``auth_time``.
    factor_times: dict[str, datetime] = field(default_factory=dict)
    ip: str | None = None
    user_agent: str | None = None


def encode_factor_times(times: dict[str, datetime]) -> dict[str, float]:
    """``factor_times`` as stored (JSON): Unix times."""
    return {method: at.timestamp() for method, at in times.items()}


def decode_factor_times(stored: object) -> dict[str, datetime]:
    """The stored form back; anything else (None from an older row) is no times at all."""
    if not isinstance(stored, dict):
        return {}
    return {
        str(method): datetime.fromtimestamp(float(at), UTC)
        for method, at in stored.items()
        if isinstance(at, int | float)
    }
