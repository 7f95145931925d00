"""protocol/api_cursors.py: MAC-bound paging cursors (RFC 2104 HMAC over the list's scope and
the position; RFC 4648 section 5 encoding)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ostiary.protocol.api_cursors import MAX_CURSOR, InvalidCursor, open_cursor, seal_cursor

KEY = bytes(range(32))


def test_a_sealed_cursor_opens_for_its_own_list() -> None:
    cursor = seal_cursor(KEY, "org-1|members", "MjAyNi0wMS0wMQ|abc")
    assert open_cursor(KEY, "org-1|members", cursor) == "MjAyNi0wMS0wMQ|abc"
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor


def test_the_tag_is_hmac_sha256_over_label_scope_and_position() -> None:
    cursor = seal_cursor(KEY, "s", "p")
    payload, tag = cursor.split(".")
    expected = hmac.new(KEY, b"ostiary-api-cursor-v1\x00s\x00p", hashlib.sha256).digest()[:16]
    assert base64.urlsafe_b64decode(tag + "==") == expected
    assert base64.urlsafe_b64decode(payload + "==") == b"p"


@pytest.mark.parametrize(
    ("scope", "key"),
    [("org-2|members", KEY), ("org-1|groups", KEY), ("org-1|members", bytes(32))],
)
def test_another_list_organization_or_key_is_refused(scope: str, key: bytes) -> None:
    cursor = seal_cursor(KEY, "org-1|members", "position")
    with pytest.raises(InvalidCursor):
        open_cursor(key, scope, cursor)


def test_scope_and_position_cannot_be_shifted_into_each_other() -> None:
    # "a|b" + "c" and "a" + "b|c" must not share a tag (the scope is NUL-terminated).
    cursor = seal_cursor(KEY, "a|b", "c")
    forged = f"{base64.urlsafe_b64encode(b'b|c').decode().rstrip('=')}.{cursor.split('.')[1]}"
    with pytest.raises(InvalidCursor):
        open_cursor(KEY, "a", forged)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        ".",
        "abc",
        "a.b.c",
        "!!!.???",
        "YQ.",
        ".YQ",
        "YQ.YQ",
        "x" * (MAX_CURSOR + 1),
        "\x00.\x00",
    ],
)
def test_garbage_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        open_cursor(KEY, "s", cursor)


def test_every_single_character_change_is_refused() -> None:
    cursor = seal_cursor(KEY, "s", "2026-01-01T00:00:00+00:00|0b5e")
    for at in range(len(cursor)):
        if cursor[at] == ".":
            continue
        changed = cursor[:at] + ("A" if cursor[at] != "A" else "B") + cursor[at + 1 :]
        try:
            opened = open_cursor(KEY, "s", changed)
        except InvalidCursor:
            continue
        # base64 may ignore the low bits of the last character: then it decodes to the same.
        assert opened == "2026-01-01T00:00:00+00:00|0b5e"


def test_a_cursor_sealed_before_the_shared_helpers_still_opens() -> None:
    # Sealed on 2026-12-03 with the module's own base64url (now protocol/signed_fields.py).
    cursor = "TWpBeU5pMHdNUzB3TVF8YWJj.yt6___HNEwuJZmPjigckKQ"
    assert seal_cursor(KEY, "org-1|members", "MjAyNi0wMS0wMQ|abc") == cursor
    assert open_cursor(KEY, "org-1|members", cursor) == "MjAyNi0wMS0wMQ|abc"
