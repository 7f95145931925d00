"""Known-device cookies: a signed mark, set at a successful sign-in, that this browser has
signed in to this account before.

OWASP "Slow Down Online Guessing Attacks with Device Cookies" (and ASVS 5.0 V6.3.1): an
account's failure limit, shared by everyone, lets anyone lock the owner out by guessing. A
browser that holds a valid device cookie for the account is throttled in a bucket of its own,
so the owner's known browsers keep working while the account is locked for everyone else; a
stolen cookie buys its thief only that one bucket. The cookie authenticates nothing: the
password is still checked.

Format: ``<device id>.<expiry, unix seconds>.<HMAC-SHA256(key, id, expiry, account)>``
(base64url, no padding). The MAC binds the cookie to one account (its normalized e-mail), so a
cookie for one account is worth nothing on another.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from ostiary.protocol.signed_fields import b64url_encode

__all__ = ["issue_device_cookie", "new_device_id", "verify_device_cookie"]

_FORMAT = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def new_device_id() -> str:
    return secrets.token_urlsafe(16)


def _mac(key: bytes, device_id: str, expires: int, account: str) -> str:
    message = b"\0".join((b"ostiary/known-device/v1", device_id.encode(), b"%d" % expires))
    digest = hmac.new(key, message + b"\0" + account.encode(), hashlib.sha256).digest()
    return b64url_encode(digest)


def issue_device_cookie(key: bytes, device_id: str, account: str, expires: datetime) -> str:
    """The cookie value for ``device_id`` on ``account``, valid until ``expires``."""
    seconds = int(expires.timestamp())
    return f"{device_id}.{seconds}.{_mac(key, device_id, seconds, account)}"


def verify_device_cookie(key: bytes, value: str, account: str, now: datetime) -> str | None:
    """The device id when ``value`` is a live cookie of ours for ``account``; else None."""
    match = _FORMAT.fullmatch(value)
    if match is None:
        return None
    device_id, seconds, mac = match.group(1), int(match.group(2)), match.group(3)
    if seconds <= now.timestamp():
        return None
    if not hmac.compare_digest(mac.encode(), _mac(key, device_id, seconds, account).encode()):
        return None
    return device_id
