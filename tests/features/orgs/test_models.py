"""features/orgs/models.py: the opaque keyset cursors of listings (base64url without padding,
RFC 4648 section 5, of ``<created_at ISO 8601>|<id>``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ostiary.features.orgs.models import InvalidInput, decode_cursor, encode_cursor

WHEN = datetime(2026, 12, 3, 20, 15, 0, 123456, tzinfo=UTC)
# Pinned on 2026-12-03: a cursor handed out before an upgrade must still page after it.
PINNED = "MjAyNi0xMi0wM1QyMDoxNTowMC4xMjM0NTYrMDA6MDB8b3JnXzAxSkVYQU1QTEU"


def test_a_cursor_is_unpadded_base64url_of_the_time_and_id() -> None:
    assert encode_cursor(WHEN, "org_01JEXAMPLE") == PINNED
    assert decode_cursor(PINNED) == (WHEN, "org_01JEXAMPLE")


@pytest.mark.parametrize("cursor", [PINNED[:-1] + "!", "é" * 8, "bm8tYmFy"])
def test_anything_else_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)
