"""API keys: the token format and the narrowing of permissions.

- Format: ``ost_sk_`` + a key id of 24 lowercase hex characters (96 random bits, the row's
  primary key: one indexed lookup finds it) + ``_`` + a secret of 43 URL-safe Base64
  characters (256 random bits; RFC 6749 section 10.10 asks for at least 128). The prefix lets
  secret scanners find leaked keys (ARCHITECTURE.md, "Security rules"); the id is not secret
  (it is shown in listings and audit events).
- Storage: HMAC-SHA256 of the whole key under a key derived for this purpose (RFC 2104;
  protocol/opaque_secrets.py), compared in constant time. A key is high-entropy, so a slow
  hash would add cost and no strength.
- Narrowing: a key holds at most its owner's permissions. The set it works with is the
  intersection of the permissions recorded on it (None: all of the owner's) with the owner's
  *current* effective permissions, ``*`` (protocol/permissions.py) taken as "everything".
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from ostiary.protocol.permissions import ALL

__all__ = [
    "API_KEY_PREFIX",
    "KEY_ID_LENGTH",
    "narrow",
    "new_api_key",
    "parse_api_key",
    "permissions_within",
]

API_KEY_PREFIX = "ost_sk_"
KEY_ID_LENGTH = 24
_SECRET_LENGTH = 43
_KEY = re.compile(r"ost_sk_([0-9a-f]{24})_([A-Za-z0-9_-]{43})")


def new_key_id() -> str:
    return secrets.token_hex(KEY_ID_LENGTH // 2)


def new_api_key(key_id: str | None = None) -> tuple[str, str]:
    """(key id, full key) for a new key, or a new secret for ``key_id`` (rotation)."""
    key_id = key_id or new_key_id()
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_api_key(raw: str) -> str | None:
    """The key id of a well-formed key, or None (no database work for garbage)."""
    if len(raw) != len(API_KEY_PREFIX) + KEY_ID_LENGTH + 1 + _SECRET_LENGTH:
        return None
    match = _KEY.fullmatch(raw)
    return match.group(1) if match else None


def permissions_within(wanted: Iterable[str], held: frozenset[str]) -> list[str]:
    """The permissions of ``wanted`` that ``held`` does not grant (``*`` held grants all;
    ``*`` wanted needs ``*`` held)."""
    if ALL in held:
        return []
    return sorted(p for p in wanted if p not in held)


def narrow(recorded: frozenset[str] | None, held: frozenset[str]) -> frozenset[str]:
    """What a key may do now: its recorded permissions (None: all) within its owner's
    current ones."""
    if recorded is None or ALL in recorded:
        return held
    if ALL in held:
        return recorded
    return recorded & held
