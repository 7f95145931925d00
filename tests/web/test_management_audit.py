"""/api/v1/orgs/{org}/audit-events (web/routes/api_v1/audit.py): an organization's slice of the
audit trail for holders of audit:read: only its own events, newest first, filtered, paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.web.management_helpers import World, build_world


@pytest.fixture
async def world(app: Any, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


def _events(world: World, org: str = "A") -> str:
    return f"/api/v1/orgs/{world.orgs[org]['id']}/audit-events"


async def _make_history(world: World) -> None:
    """In A: alice creates two roles and is refused a third (a taken name); in B, bob creates
    one."""
    a, b = world.orgs["A"]["id"], world.orgs["B"]["id"]
    for name in ("first", "second", "first"):
        await world.call("alice", "POST", f"/api/v1/orgs/{a}/roles", json={"name": name})
    made = await world.call("bob", "POST", f"/api/v1/orgs/{b}/roles", json={"name": "b-role"})
    assert made.status_code == 201, made.text


async def test_an_organization_reads_its_own_events_newest_first(world: World) -> None:
    await _make_history(world)
    listed = await world.call("alice", "GET", _events(world), params={"limit": 200})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    a = world.orgs["A"]["id"]
    assert items and all(e["details"].get("organization_id") == a for e in items)
    assert not any("b-role" in str(e) for e in items)  # nothing of B
    seqs = [e["seq"] for e in items]
    assert seqs == sorted(seqs, reverse=True)
    actions = [(e["action"], e["outcome"]) for e in items]
    assert ("api.role.create", "failure") in actions
    assert actions.count(("rbac.role.create", "success")) == 2
    assert actions.count(("api.role.create", "failure")) == 1
    # bob sees B's and not A's
    other = await world.call("bob", "GET", _events(world, "B"), params={"limit": 200})
    assert other.status_code == 200
    assert all(
        e["details"].get("organization_id") == world.orgs["B"]["id"] for e in other.json()["items"]
    )


async def test_filters_select_by_action_actor_outcome_and_time(world: World) -> None:
    await _make_history(world)
    failed = await world.call("alice", "GET", _events(world), params={"outcome": "failure"})
    assert [e["action"] for e in failed.json()["items"]] == ["api.role.create"]
    assert failed.json()["items"][0]["actor"] == world.users["alice"]
    assert failed.json()["items"][0]["details"]["code"] == "conflict"
    refused = await world.call("alice", "GET", _events(world), params={"action": "api.role.create"})
    assert len(refused.json()["items"]) == 1
    by_dave = await world.call(
        "alice", "GET", _events(world), params={"actor": world.users["dave"]}
    )
    assert by_dave.json()["items"] == []
    now = datetime.now(UTC)
    later = await world.call(
        "alice", "GET", _events(world), params={"since": (now + timedelta(days=1)).isoformat()}
    )
    assert later.json()["items"] == []
    window = {
        "since": (now - timedelta(days=3650)).isoformat(),
        "until": (now + timedelta(days=3650)).isoformat(),
    }
    everything = await world.call("alice", "GET", _events(world), params=window)
    assert len(everything.json()["items"]) >= 3


@pytest.mark.parametrize(
    "params",
    [
        {"outcome": "maybe"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no offset: refused, not guessed
        {"limit": 0},
        {"limit": 201},
        {"action": "x" * 65},
        {"actor": "bad\x01"},
        {"cursor": "not-a-cursor"},
    ],
)
async def test_bad_parameters_get_clear_errors(world: World, params: dict[str, Any]) -> None:
    response = await world.call("alice", "GET", _events(world), params=params)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]


async def test_pages_follow_the_trail_and_a_cursor_is_for_its_list_only(world: World) -> None:
    await _make_history(world)
    seen: list[int] = []
    cursor = None
    for _ in range(50):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await world.call("alice", "GET", _events(world), params=params)
        assert page.status_code == 200, page.text
        seen += [e["seq"] for e in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    whole = await world.call("alice", "GET", _events(world), params={"limit": 200})
    assert seen == [e["seq"] for e in whole.json()["items"]]
    assert len(seen) > 2
    first = await world.call("alice", "GET", _events(world), params={"limit": 1})
    foreign = await world.call(
        "bob", "GET", _events(world, "B"), params={"cursor": first.json()["next_cursor"]}
    )
    assert foreign.status_code == 400
    assert foreign.json()["error"]["code"] == "invalid_cursor"


async def test_reading_the_trail_needs_audit_read(world: World) -> None:
    refused = await world.call("carol", "GET", _events(world))  # a member
    assert refused.status_code == 403
    assert "audit:read" in refused.json()["error"]["message"]
    assert (await world.call("dave", "GET", _events(world))).status_code == 200  # an admin
    org = world.orgs["A"]["id"]
    async with world.app.state.runtime.unit() as unit:
        narrowed = await unit.api_keys.create_key(
            org, ("user", world.users["alice"]), permissions=["members:read"], actor=None
        )
    response = await world.client.get(
        _events(world), headers={"Authorization": f"Bearer {narrowed.secret}"}
    )
    assert response.status_code == 403


def _decisions(world: World, org: str = "A") -> str:
    return f"/api/v1/orgs/{world.orgs[org]['id']}/decisions"


async def _evaluate(world: World, subject: str, action: str, org: str = "A") -> bool:
    owner = "alice" if org == "A" else "bob"
    response = await world.client.post(
        "/access/v1/evaluation",
        headers={**world.auth(owner), "Ostiary-Organization": world.orgs[org]["id"]},
        json={
            "subject": {"type": "user", "id": world.users[subject]},
            "action": {"name": action},
            "resource": {"type": "model", "id": "m1", "properties": {"tier": "gold"}},
            "context": {"purpose": "chat"},
        },
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["decision"])


async def test_the_logged_decisions_of_an_organization_are_read_newest_first(
    world: World,
) -> None:
    assert await _evaluate(world, "carol", "models:read") is True  # a member may
    assert await _evaluate(world, "carol", "models:manage") is False  # and may not
    assert await _evaluate(world, "bob", "models:read", org="B") is True  # in B
    listed = await world.call("dave", "GET", _decisions(world))  # an admin reads A's
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(d["action"]["name"], d["decision"]) for d in items] == [
        ("models:manage", False),
        ("models:read", True),
    ]
    denied = items[0]
    assert denied["subject"] == {"type": "user", "id": world.users["carol"], "properties": {}}
    assert denied["resource"]["properties"] == {"tier": "gold"}
    assert denied["context"] == {"purpose": "chat"}
    assert "models:manage" in denied["reason"]
    assert set(denied["caller"]) == {"ip", "acr", "amr"}
    only_denied = await world.call("alice", "GET", _decisions(world), params={"decision": False})
    assert [d["id"] for d in only_denied.json()["items"]] == [denied["id"]]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = await world.call("alice", "GET", _decisions(world), params={"since": future})
    assert later.json()["items"] == []
    first = await world.call("alice", "GET", _decisions(world), params={"limit": 1})
    assert [d["id"] for d in first.json()["items"]] == [denied["id"]]
    rest = await world.call(
        "alice", "GET", _decisions(world), params={"cursor": first.json()["next_cursor"]}
    )
    assert [d["id"] for d in rest.json()["items"]] == [items[1]["id"]]
    assert rest.json()["next_cursor"] is None
    refused = await world.call("carol", "GET", _decisions(world))
    assert refused.status_code == 403 and "audit:read" in refused.text
