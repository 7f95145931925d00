"""web/email_links.py: the link that verifies a changed e-mail address, here its byte format;
the routes are tested in test_email_verification.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ostiary.web.email_links import LINK_TTL_SECONDS, EmailLink, EmailLinks

KEY = bytes(range(32))
NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)


def test_a_link_issued_before_the_shared_helpers_still_verifies() -> None:
    # Issued on 2026-12-03 by the module's own base64url and length-prefixed fields (now in
    # protocol/signed_fields.py): a link mailed before that upgrade must still work.
    old = "dXNlci0xCmFkYUBleGFtcGxlLm9yZwoxNzk2MjU5NjAw.s6y3shcAmact-9W2qo5EwV2jlGzT5erROAVNS7To7jY"
    links = EmailLinks(KEY)
    assert links.issue("user-1", "ada@example.org", NOW) == old
    later = NOW + timedelta(seconds=LINK_TTL_SECONDS - 1)
    assert links.verify(old, later) == EmailLink("user-1", "ada@example.org", 1796259600)
    assert links.verify(old, NOW + timedelta(seconds=LINK_TTL_SECONDS)) is None
