"""web/second_step.py: the signed ticket between the password and the second factor (OWASP
ASVS V2.8), here its byte format; the routes are tested in test_sign_in_second_step.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ostiary.web.second_step import TICKET_TTL_SECONDS, SecondStepTickets

KEY = bytes(range(32))
NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
BROWSER = "b" * 43
# Issued on 2026-12-03 by the module's own base64url and length-prefixed fields (now in
# protocol/signed_fields.py): a ticket in flight across that upgrade must still read.
OLD_TICKET = (
    "1796259600.bm9uY2Utbm9uY2Utbm9uY2U.dXNlci0xw6k.sid-1."
    "0iZwvdkYblrbkDh-R00hm4a9FSETxafnjYU3MhFg5TE"
)


def test_a_ticket_issued_before_the_shared_helpers_still_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("secrets.token_urlsafe", lambda _: "bm9uY2Utbm9uY2Utbm9uY2U")
    tickets = SecondStepTickets(KEY)
    assert tickets.issue("user-1\u00e9", now=NOW, browser=BROWSER, sid="sid-1") == OLD_TICKET
    ticket = tickets.read(OLD_TICKET, now=NOW, browser=BROWSER)
    assert ticket is not None
    assert (ticket.user_id, ticket.nonce, ticket.sid) == (
        "user-1\u00e9",
        "bm9uY2Utbm9uY2Utbm9uY2U",
        "sid-1",
    )


@pytest.mark.parametrize(
    ("later", "reads"),
    [(-60, True), (-61, False), (TICKET_TTL_SECONDS, True), (TICKET_TTL_SECONDS + 1, False)],
)
def test_a_ticket_reads_from_a_minute_before_its_issue_to_its_expiry(
    later: int, reads: bool
) -> None:
    now = NOW + timedelta(seconds=later)
    assert (SecondStepTickets(KEY).read(OLD_TICKET, now=now, browser=BROWSER) is not None) is reads
