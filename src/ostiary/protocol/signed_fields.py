"""The pieces the server's HMAC-signed values are made of.

Passkey ceremony states, second-step tickets, sign-in proofs, e-mail verification links and
management API cursors are each an HMAC-SHA256 (RFC 2104) under a key of their own over a few
text fields, carried as base64url. They share, each as far as it needs:

- base64url without padding (RFC 4648 section 5 and section 3.2): safe in a cookie, a URL path
  or a query string. Decoding takes the canonical encoding only (section 3.5): the one text
  that encoding the bytes gives back. :func:`base64.urlsafe_b64decode` alone ignores the
  unused low bits of the last character and skips characters outside the alphabet, so one
  signed value had several spellings that all verified (``...Bw`` and ``...Bx`` the same MAC);
  now each has one, and anything else raises ``ValueError`` (``binascii.Error`` is one);
- the MAC input: RFC 2104 MACs one byte string, so the fields are joined each prefixed with its
  length in bytes, and no two field lists give the same input (``("ab", "c")`` and
  ``("a", "bc")`` would both be ``abc`` joined plainly);
- freshness: the time of issue travels as decimal Unix seconds, and the value is good from a
  little before it (:data:`CLOCK_SKEW_SECONDS`) up to its time to live.

The base64url helpers also serve the PKCE S256 challenge (RFC 7636 section 4.2), the
``at_hash`` of an ID token (OpenID Connect Core 1.0 section 3.1.3.6) and organization list
cursors. The secret key setting (config.py) decodes leniently on its own: an operator's key
may be padded, in the standard alphabet or not canonical. Token signing and parsing
(protocol/jose.py, protocol/jwt_parts.py) keep their own bytes-based code on the hot path, and
the demo relying party (web/routes/demo.py) its own, so that it stays a client independent of
the server's code.

The byte formats are what values already issued were made with: a change here makes every
cookie, link and cursor in flight unreadable.
"""

from __future__ import annotations

import base64
from datetime import datetime

__all__ = ["CLOCK_SKEW_SECONDS", "b64url_decode", "b64url_encode", "issued_fresh", "mac_input"]

# Issued by a replica whose clock runs a little ahead: still ours (the MAC says so), so accepted.
CLOCK_SKEW_SECONDS = 60
# Unix seconds in 12 digits last until the year 33658; a longer text is not ours.
_MAX_ISSUED_DIGITS = 12


def b64url_encode(raw: bytes) -> str:
    """``raw`` in base64url without padding (RFC 4648 section 5, section 3.2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The bytes of base64url ``text`` in its canonical form (no padding, unused bits zero);
    ``ValueError`` (``binascii.Error`` is one) for any other text."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(raw) != text:
        raise ValueError("not canonical base64url (RFC 4648 section 3.5)")
    return raw


def mac_input(*fields: str) -> bytes:
    """The fields as one MAC input: each one ``<length in bytes>:<UTF-8 bytes>``."""
    return b"".join(b"%d:%s" % (len(data), data) for data in (f.encode() for f in fields))


def issued_fresh(issued: str, now: datetime, ttl_seconds: int) -> bool:
    """``issued`` (Unix seconds, ASCII digits only) is at most ``ttl_seconds`` before ``now``
    and at most :data:`CLOCK_SKEW_SECONDS` after it."""
    if not (issued.isascii() and issued.isdigit()) or len(issued) > _MAX_ISSUED_DIGITS:
        return False
    age = int(now.timestamp()) - int(issued)
    return -CLOCK_SKEW_SECONDS <= age <= ttl_seconds
