"""features/models/service.py over the real SQL store: attribute rules, levels (deployment-wide
and per organization, each scoped), the merge a decision sees, paging, audit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ostiary.features.models.service import check_attributes, parse_attribute
from ostiary.features.orgs.models import Conflict, InvalidInput, NotFound
from ostiary.storage.sqla.tables import audit_events


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("tier=premium", ("tier", "premium")),
        ("context_window=128000", ("context_window", 128000)),
        ("neg=-5", ("neg", -5)),
        ("open=true", ("open", True)),
        ("modalities=text, image,", ("modalities", ["text", "image"])),
        ("note=a=b", ("note", "a=b")),
        ("big=99999999999999999999", ("big", "99999999999999999999")),
    ],
)
def test_parse_attribute(pair: str, expected: tuple[str, Any]) -> None:
    assert parse_attribute(pair) == expected


@pytest.mark.parametrize(
    "attributes",
    [
        {"1st": "x"},
        {"a-b": "x"},
        {"x" * 65: 1},
        {"f": 1.5},
        {"n": 2**63},
        {"d": {"nested": 1}},
        {"s": "x" * 501},
        {"l": list(range(101))},
        {f"k{i}": i for i in range(51)},
        {"none": None},
    ],
)
def test_bad_attributes_are_refused(attributes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        check_attributes(attributes)


async def test_levels_are_separate_and_merge_for_decisions(runtime: Any) -> None:
    async with runtime.unit() as unit:
        org_a = (await unit.orgs.create("Cat A", actor=None)).id
        org_b = (await unit.orgs.create("Cat B", actor=None)).id
        await unit.models.create(None, "m", {"tier": "premium", "region": "us"}, actor="ops")
        await unit.models.create(org_a, "m", {"region": "eu"}, actor="ops")
        with pytest.raises(Conflict):
            await unit.models.create(org_a, "m", {}, actor=None)
        with pytest.raises(InvalidInput):
            await unit.models.create(org_a, "bad\x00id", {}, actor=None)
        assert await unit.models.attributes(org_a, "m") == {"tier": "premium", "region": "eu"}
        assert await unit.models.attributes(org_b, "m") == {"tier": "premium", "region": "us"}
        assert await unit.models.attributes(org_b, "absent") == {}
        with pytest.raises(NotFound):
            await unit.models.get(org_b, "m")  # B has no entry of its own; A's is not B's
        with pytest.raises(NotFound):
            await unit.models.delete(org_b, "m", actor=None)
        for i in range(5):
            await unit.models.create(org_b, f"b{i}", {"i": i}, actor=None)
        page, after = await unit.models.list(org_b, limit=2)
        assert [e.model_id for e in page] == ["b0", "b1"] and after == "b1"
        rest, end = await unit.models.list(org_b, limit=10, after=after)
        assert [e.model_id for e in rest] == ["b2", "b3", "b4"] and end is None
        updated = await unit.models.update(org_a, "m", {"region": "ap"}, actor=None)
        assert updated.attributes == {"region": "ap"}
        await unit.models.delete(org_a, "m", actor=None)
        assert await unit.models.attributes(org_a, "m") == {"tier": "premium", "region": "us"}
        rows = (
            await unit.conn.execute(
                select(audit_events.c.action, audit_events.c.details).where(
                    audit_events.c.action.like("models.%")
                )
            )
        ).all()
    actions = [r.action for r in rows]
    assert actions.count("models.create") == 7 and "models.delete" in actions
    assert any(r.details.get("organization_id") == org_a for r in rows)
