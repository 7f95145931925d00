"""Opaque, MAC-bound paging cursors of the management API (/api/v1).

A listing's position (the keyset cursor its service hands out) travels to the client wrapped in
a token ``<payload>.<tag>``: the payload names the list it belongs to (organization and kind of
resource) and the tag is HMAC-SHA256 (RFC 2104) over a domain label, the list and the payload
under a key derived for this purpose only (``ostiary/api-cursor``, RFC 5869). A cursor is thus
refused when altered, forged, or replayed against another list or another organization; the
tag is compared in constant time. Both parts are base64url without padding (RFC 4648
section 5), so a cursor is safe in a query string.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac

from ostiary.protocol.signed_fields import b64url_decode, b64url_encode

__all__ = ["MAX_CURSOR", "InvalidCursor", "open_cursor", "seal_cursor"]

MAX_CURSOR = 1_024
_LABEL = b"ostiary-api-cursor-v1\x00"
_TAG_BYTES = 16


class InvalidCursor(ValueError):
    """A cursor we did not hand out for this list."""


def _tag(key: bytes, scope: str, payload: bytes) -> bytes:
    message = _LABEL + scope.encode() + b"\x00" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def seal_cursor(key: bytes, scope: str, position: str) -> str:
    """Wrap a listing's ``position`` for the list named by ``scope`` (e.g. ``org|members``)."""
    payload = position.encode()
    return f"{b64url_encode(payload)}.{b64url_encode(_tag(key, scope, payload))}"


def open_cursor(key: bytes, scope: str, cursor: str) -> str:
    """The position inside ``cursor``; :class:`InvalidCursor` unless we sealed it for
    ``scope``."""
    if not cursor or len(cursor) > MAX_CURSOR or cursor.count(".") != 1:
        raise InvalidCursor("invalid cursor")
    encoded, _, tag = cursor.partition(".")
    try:
        payload = b64url_decode(encoded)
        given = b64url_decode(tag)
    except (binascii.Error, ValueError):
        raise InvalidCursor("invalid cursor") from None
    if not hmac.compare_digest(given, _tag(key, scope, payload)):
        raise InvalidCursor("invalid cursor")
    try:
        return payload.decode()
    except UnicodeDecodeError:  # only reachable with our own key: never expected
        raise InvalidCursor("invalid cursor") from None
