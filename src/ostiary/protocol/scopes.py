"""Scope strings (RFC 6749 section 3.3) and the OpenID Connect scope-to-claims map.

- RFC 6749 section 3.3: space-delimited, case-sensitive, order-insensitive scope tokens of
  ``%x21 / %x23-5B / %x5D-7E``.
- OpenID Connect Core 1.0 section 5.4: ``profile`` and ``email`` request claim groups;
  section 11: ``offline_access`` requests a refresh token.
"""

from __future__ import annotations

import re

__all__ = ["CLAIMS_BY_SCOPE", "ScopeError", "format_scope", "parse_scope"]

_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
_MAX_SCOPES = 64

CLAIMS_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "profile": ("name", "updated_at"),
    "email": ("email", "email_verified"),
}


class ScopeError(ValueError):
    pass


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Scope tokens in first-seen order, duplicates dropped; malformed input raises."""
    if not value:
        return ()
    tokens = value.split(" ")
    if len(tokens) > _MAX_SCOPES:
        raise ScopeError("too many scopes")
    seen: dict[str, None] = {}
    for token in tokens:
        if not token:
            continue  # tolerate double spaces, which some clients send
        if not _TOKEN.fullmatch(token) or len(token) > 128:
            raise ScopeError("malformed scope")
        seen[token] = None
    return tuple(seen)


def format_scope(scopes: tuple[str, ...] | list[str]) -> str:
    return " ".join(scopes)
