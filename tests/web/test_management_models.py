"""/api/v1/orgs/{org}/models (web/routes/api_v1/models.py): the organization's model catalog
over the management API, and what an AuthZEN decision then reads from it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.management_helpers import World, build_world


@pytest.fixture
async def world(app: Any, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


def _a(world: World, rest: str = "") -> str:
    return f"/api/v1/orgs/{world.orgs['A']['id']}{rest}"


async def test_catalog_entries_over_the_api_merge_over_deployment_wide_ones(world: World) -> None:
    async with world.app.state.runtime.unit() as unit:
        await unit.models.create(None, "gpt-x", {"tier": "basic", "region": "us"}, actor=None)
    made = await world.call(
        "alice", "POST", _a(world, "/models"), json={"id": "gpt-x", "attributes": {"tier": "gold"}}
    )
    assert made.status_code == 201, made.text
    shown = await world.call("carol", "GET", _a(world, "/models/gpt-x"))  # a member reads
    assert shown.status_code == 200
    assert shown.json()["attributes"] == {"tier": "gold"}
    assert shown.json()["effective_attributes"] == {"tier": "gold", "region": "us"}
    replaced = await world.call(
        "alice", "PUT", _a(world, "/models/gpt-x"), json={"attributes": {"tier": "silver"}}
    )
    assert replaced.json()["attributes"] == {"tier": "silver"}
    listed = await world.call("alice", "GET", _a(world, "/models"))
    assert [m["id"] for m in listed.json()["items"]] == ["gpt-x"]
    # another organization sees neither the entry nor the organization
    other = await world.call("bob", "GET", _a(world, "/models/gpt-x"))
    assert other.status_code == 404
    assert (await world.call("alice", "DELETE", _a(world, "/models/gpt-x"))).status_code == 204
    assert (await world.call("alice", "GET", _a(world, "/models/gpt-x"))).status_code == 404


async def test_a_member_cannot_change_the_catalog(world: World) -> None:
    refused = await world.call(
        "carol", "POST", _a(world, "/models"), json={"id": "m", "attributes": {}}
    )
    assert refused.status_code == 403 and "models:manage" in refused.text
    admin = await world.call("dave", "POST", _a(world, "/models"), json={"id": "m"})
    assert admin.status_code == 201, admin.text


@pytest.mark.parametrize(
    "body",
    [
        {"id": "", "attributes": {}},
        {"id": "a/b", "attributes": {}},
        {"id": "m", "attributes": {"price": 1.5}},
        {"id": "m", "attributes": {"n": 2**70}},
        {"id": "m", "attributes": {"nested": {"a": 1}}},
        {"id": "m", "extra": True},
    ],
)
async def test_bad_entries_get_clear_errors_and_make_nothing(
    world: World, body: dict[str, Any]
) -> None:
    response = await world.call("alice", "POST", _a(world, "/models"), json=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]
    listed = await world.call("alice", "GET", _a(world, "/models"))
    assert listed.json()["items"] == []
