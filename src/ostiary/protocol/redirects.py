"""Return-path validation for browser flows (no open redirects).

- OWASP ASVS 4.0 V5.1.5: redirects only to allow-listed destinations.
- RFC 3986 section 4.2: a relative reference that starts with ``//`` is a network-path
  reference (it names another host), so it is refused; so is ``/\\``, which browsers treat as
  ``//`` (WHATWG URL Standard, "special" schemes treat backslash as a path separator).
"""

from __future__ import annotations

__all__ = ["safe_local_path"]

# Long enough for an authorization request carried back through sign-in (/authorize?...).
_MAX_LEN = 8192


def safe_local_path(candidate: str | None, default: str = "/account") -> str:
    """Return ``candidate`` if it is a path on this origin, else ``default``."""
    if not candidate or len(candidate) > _MAX_LEN:
        return default
    if not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return default
    # Control (C0, C1), format and line/paragraph separator characters are not printable.
    if not candidate.isprintable() or "\\" in candidate:
        return default
    return candidate
