"""Scope strings (RFC 6749 section 3.3) and the OpenID Connect scope-to-claims map.

- RFC 6749 section 3.3: space-delimited, case-sensitive, order-insensitive scope tokens of
  ``%x21 / %x23-5B / %x5D-7E``.
- RFC 6749 section 3.3: the server "MAY fully or partially ignore the scope requested by the
  client" and then returns the granted ``scope``: a scope the client may not have is dropped
  (:func:`granted_scopes`), and refused only when nothing usable remains, or when ``openid``
  is not allowed (an OpenID request must not silently become plain OAuth 2.0).
- OpenID Connect Core 1.0 section 5.4: ``profile``, ``email``, ``address`` and ``phone``
  request claim groups; section 11: ``offline_access`` requests a refresh token.
- ``ostiary.manage`` (ours): a user's access token carrying it may call the management API
  (/api/v1) as that user; a token issued to an application for sign-in alone may not.
"""

from __future__ import annotations

import re

__all__ = [
    "CLAIMS_BY_SCOPE",
    "MANAGE_SCOPE",
    "ScopeError",
    "format_scope",
    "granted_scopes",
    "parse_scope",
]

_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
_MAX_SCOPES = 64
MANAGE_SCOPE = "ostiary.manage"

CLAIMS_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "profile": (
        "name",
        "family_name",
        "given_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
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


def granted_scopes(
    requested: tuple[str, ...], allowed: list[str] | tuple[str, ...]
) -> tuple[str, ...]:
    """The part of ``requested`` the client may have (RFC 6749 section 3.3), in request order.

    Raises when ``openid`` was asked for but is not allowed, or when scopes were asked for
    and none is allowed; an empty request stays empty (the client's default: none).
    """
    granted = tuple(s for s in requested if s in allowed)
    if "openid" in requested and "openid" not in granted:
        raise ScopeError("Scope not allowed for this client: openid.")
    if requested and not granted:
        raise ScopeError(f"Scope not allowed for this client: {format_scope(requested)[:200]}.")
    return granted
