"""Known-device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies")."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from ostiary.protocol.device_cookies import (
    issue_device_cookie,
    new_device_id,
    verify_device_cookie,
)

KEY = bytes(range(32))
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=90)


def test_round_trip_gives_back_the_device_id() -> None:
    device = new_device_id()
    cookie = issue_device_cookie(KEY, device, "ada@example.com", LATER)
    assert verify_device_cookie(KEY, cookie, "ada@example.com", NOW) == device


def test_format_is_id_expiry_and_hmac_over_all_three_and_the_account() -> None:
    device = "A" * 22
    cookie = issue_device_cookie(KEY, device, "ada@example.com", LATER)
    expires = int(LATER.timestamp())
    message = b"ostiary/known-device/v1\0" + b"A" * 22 + b"\0%d\0ada@example.com" % expires
    mac = base64.urlsafe_b64encode(hmac.new(KEY, message, hashlib.sha256).digest()).rstrip(b"=")
    assert cookie == f"{device}.{expires}.{mac.decode()}"


def test_bound_to_one_account_and_one_key() -> None:
    cookie = issue_device_cookie(KEY, new_device_id(), "ada@example.com", LATER)
    assert verify_device_cookie(KEY, cookie, "eve@example.com", NOW) is None
    assert verify_device_cookie(bytes(32), cookie, "ada@example.com", NOW) is None


def test_expired_cookie_is_not_known() -> None:
    cookie = issue_device_cookie(KEY, new_device_id(), "ada@example.com", LATER)
    assert verify_device_cookie(KEY, cookie, "ada@example.com", LATER) is None


def test_a_later_expiry_cannot_be_written_in() -> None:
    device = new_device_id()
    cookie = issue_device_cookie(KEY, device, "ada@example.com", LATER)
    _, expires, mac = cookie.split(".")
    forged = f"{device}.{int(expires) + 86400 * 365}.{mac}"
    assert verify_device_cookie(KEY, forged, "ada@example.com", NOW) is None


@pytest.mark.parametrize(
    "value", ["", "x", "a.b.c", "." * 80, "A" * 22 + ".99999999999999." + "B" * 43, "é" * 70]
)
def test_garbage_is_not_known(value: str) -> None:
    assert verify_device_cookie(KEY, value, "ada@example.com", NOW) is None
