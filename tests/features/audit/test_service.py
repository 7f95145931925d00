"""Audit trail: redaction, chaining, tamper detection (on the real database)."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import update

from ostiary.storage.sqla.tables import audit_events


async def _record_some(rt: Any, n: int = 4) -> None:
    async with rt.unit() as unit:
        for i in range(n):
            await unit.audit.record(
                "test.event",
                "success",
                actor=f"user-{i}",
                ip="192.0.2.1",
                details={"i": i, "password": "hunter2hunter2", "note": "mail bob@example.com"},
            )


async def test_details_are_redacted(runtime: Any) -> None:
    async with runtime.unit() as unit:
        event = await unit.audit.record(
            "x",
            "failure",
            details={"password": "p4ss", "refresh_token": "rt", "email": "carol@example.org"},
        )
    assert event.details == {
        "password": "[redacted]",
        "refresh_token": "[redacted]",
        "email": "c***@example.org",
    }


async def test_intact_trail_verifies(runtime: Any) -> None:
    await _record_some(runtime)
    async with runtime.unit() as unit:
        report = await unit.audit.verify()
    assert report.intact
    assert report.checked == 4


async def test_edited_row_is_detected(runtime: Any) -> None:
    await _record_some(runtime)
    async with runtime.unit() as unit:
        await unit.conn.execute(
            update(audit_events).where(audit_events.c.seq == 3).values(outcome="failure")
        )
    async with runtime.unit() as unit:
        report = await unit.audit.verify()
    assert not report.intact
    assert report.broken_at == 3
    assert report.checked == 2


async def test_chain_continues_across_transactions(runtime: Any) -> None:
    await _record_some(runtime, 2)
    await _record_some(runtime, 2)
    async with runtime.unit() as unit:
        events = [e async for e in unit.audit._store.scan(batch_size=3)]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(events))
