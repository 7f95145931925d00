"""Runtime.invite (web/runtime.py): the invitation commits before its mail is sent; a send
that fails is audited and recorded on the invitation, which can be sent again with a new link;
concurrent re-invitations of one address leave one pending invitation."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ostiary.features.clock import FrozenClock
from ostiary.storage.sqla.tables import audit_events
from tests.conftest import Backend, make_settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def smtp_runtime(backend: Backend, tmp_path: Path, clock: FrozenClock) -> Any:
    from ostiary.web.runtime import Runtime

    settings = make_settings(
        backend,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=_closed_port(),  # nothing listens: every send fails
        smtp_security="none",
        smtp_timeout_seconds=5,
    )
    rt = Runtime(settings, clock=clock)
    yield rt
    await rt.close()


async def _org(rt: Any) -> str:
    async with rt.unit() as unit:
        return str((await unit.orgs.create("Mailers", actor=None)).id)


async def test_a_failed_send_is_recorded_and_the_invitation_can_be_sent_again(
    smtp_runtime: Any,
) -> None:
    rt = smtp_runtime
    org = await _org(rt)
    result = await rt.invite(org, "ada@example.com", ["member"], actor=None)
    assert result.mail == "failed" and "could not" in (result.error or "")
    async with rt.unit() as unit:
        stored = await unit.invitations.get(org, result.invitation.id)
        assert stored.status == "pending" and stored.mail_status == "failed"
        [event] = (
            await unit.conn.execute(
                select(audit_events).where(audit_events.c.action == "org.invitation.mail")
            )
        ).all()
    assert event.outcome == "failure" and event.details["organization_id"] == org
    assert "ada@example.com" not in str(event.details)
    again = await rt.resend_invitation(org, result.invitation.id, actor=None)
    assert again.invitation.id == result.invitation.id and again.link != result.link
    assert again.mail == "failed"


async def test_concurrent_reinvitations_leave_one_pending(runtime: Any) -> None:
    org = await _org(runtime)

    async def invite(role: str) -> Any:
        return await runtime.invite(org, "Ada@Example.com", [role], actor=None, send=False)

    results = await asyncio.wait_for(
        asyncio.gather(*(invite(r) for r in ("member", "reader", "admin", "member"))), timeout=30
    )
    assert len({r.invitation.id for r in results}) == 4
    async with runtime.unit() as unit:
        pending, _ = await unit.invitations.list_invitations(org, status="pending")
        revoked, _ = await unit.invitations.list_invitations(org, status="revoked")
    assert len(pending) == 1 and len(revoked) == 3
