"""/api/v1/orgs/{org}/service-accounts and /keys (web/routes/api_v1/keys.py): the management
API over service accounts and API keys, driven with httpx; the keys it hands out are then used
as bearers (of the management API and of /api/v1/keys/verify), so each change is seen working.
"""

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


async def _with_key(world: World, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return await world.client.request(method, path, headers=headers, **kw)


async def test_a_service_account_with_a_key_lives_and_dies_through_the_api(world: World) -> None:
    made = await world.call(
        "alice", "POST", _a(world, "/service-accounts"), json={"name": "gw", "roles": ["member"]}
    )
    assert made.status_code == 201, made.text
    account = made.json()
    listed = await world.call("alice", "GET", _a(world, "/service-accounts"))
    assert [a["id"] for a in listed.json()["items"]] == [account["id"]]
    issued = await world.call(
        "alice", "POST", _a(world, "/keys"), json={"service_account": account["id"], "name": "k"}
    )
    assert issued.status_code == 201, issued.text
    key = issued.json()["key"]
    assert key.startswith("ost_sk_") and issued.json()["owner_type"] == "service_account"
    # the key is shown once: listings carry no secret
    shown = await world.call("alice", "GET", _a(world, f"/keys/{issued.json()['id']}"))
    assert "key" not in shown.json()
    assert key not in (await world.call("alice", "GET", _a(world, "/keys"))).text
    # the member role reads members
    assert (await _with_key(world, key, "GET", _a(world, "/members"))).status_code == 200
    off = await world.call(
        "alice", "PATCH", _a(world, f"/service-accounts/{account['id']}"), json={"disabled": True}
    )
    assert off.status_code == 200 and off.json()["disabled"] is True
    assert (await _with_key(world, key, "GET", _a(world, "/members"))).status_code == 401
    on = await world.call(
        "alice", "PATCH", _a(world, f"/service-accounts/{account['id']}"), json={"disabled": False}
    )
    assert on.status_code == 200
    assert (await _with_key(world, key, "GET", _a(world, "/members"))).status_code == 200
    gone = await world.call("alice", "DELETE", _a(world, f"/service-accounts/{account['id']}"))
    assert gone.status_code == 204
    assert (await _with_key(world, key, "GET", _a(world, "/members"))).status_code == 401
    missing = await world.call("alice", "GET", _a(world, f"/service-accounts/{account['id']}"))
    assert missing.status_code == 404


async def test_a_member_manages_their_own_keys_only(world: World) -> None:
    own = await world.call("carol", "POST", _a(world, "/keys"), json={"name": "laptop"})
    assert own.status_code == 201, own.text
    first = own.json()
    assert first["owner_type"] == "user" and first["permissions"] is None
    owner_key = await world.call("alice", "POST", _a(world, "/keys"), json={"name": "ops"})
    # a plain member lacks keys:revoke and service-accounts:manage
    assert (
        await world.call("carol", "DELETE", _a(world, f"/keys/{owner_key.json()['id']}"))
    ).status_code == 403
    account = await world.call("alice", "POST", _a(world, "/service-accounts"), json={"name": "s"})
    for_account = await world.call(
        "carol", "POST", _a(world, "/keys"), json={"service_account": account.json()["id"]}
    )
    assert for_account.status_code == 403
    assert "service-accounts:manage" in for_account.json()["error"]["message"]
    # rotation: the old secret still works within the overlap, the new one too
    rotated = await world.call(
        "carol", "POST", _a(world, f"/keys/{first['id']}/rotate"), json={"overlap_seconds": 600}
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["key"] != first["key"]
    for key in (first["key"], rotated.json()["key"]):
        assert (await _with_key(world, key, "GET", _a(world, "/members"))).status_code == 200
    assert (
        await world.call("carol", "DELETE", _a(world, f"/keys/{first['id']}"))
    ).status_code == 204
    for key in (first["key"], rotated.json()["key"]):
        assert (await _with_key(world, key, "GET", _a(world, "/members"))).status_code == 401
    again = await world.call("carol", "DELETE", _a(world, f"/keys/{first['id']}"))
    assert again.status_code == 409


async def test_no_escalation_through_service_accounts_or_their_keys(world: World) -> None:
    # dave is an admin: every permission but org:manage
    owner_account = await world.call(
        "dave", "POST", _a(world, "/service-accounts"), json={"name": "x", "roles": ["owner"]}
    )
    assert owner_account.status_code == 403
    assert owner_account.json()["error"]["code"] == "permission_escalation"
    made = await world.call(
        "alice", "POST", _a(world, "/service-accounts"), json={"name": "o", "roles": ["owner"]}
    )
    assert made.status_code == 201
    account_id = made.json()["id"]
    # a key of the owner account would carry org:manage, which dave lacks
    key = await world.call("dave", "POST", _a(world, "/keys"), json={"service_account": account_id})
    assert key.status_code == 403
    narrowed = await world.call(
        "dave",
        "POST",
        _a(world, "/keys"),
        json={"service_account": account_id, "permissions": ["models:invoke"]},
    )
    assert narrowed.status_code == 201, narrowed.text
    assert narrowed.json()["permissions"] == ["models:invoke"]
    # nor can dave disable or delete the owner account
    patch = await world.call(
        "dave", "PATCH", _a(world, f"/service-accounts/{account_id}"), json={"disabled": True}
    )
    assert patch.status_code == 403
    delete = await world.call("dave", "DELETE", _a(world, f"/service-accounts/{account_id}"))
    assert delete.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"allowed_ips": ["10.0.0.1/33"]},
        {"allowed_ips": ["::ffff:1.2.3.4/200"]},
        {"allowed_ips": ["10.0.0.1/24"]},
        {"allowed_ips": []},
        {"permissions": ["models:nonsense"]},
        {"permissions": ["org:manage"]},
        {"expires_in_days": 0},
        {"service_account": "no-such-account"},
        {"unknown": 1},
    ],
)
async def test_bad_key_requests_get_clear_errors_and_make_nothing(
    world: World, body: dict[str, Any]
) -> None:
    response = await world.call("carol", "POST", _a(world, "/keys"), json=body)
    assert response.status_code in (403, 404, 422), response.text
    assert response.json()["error"]["message"]
    listed = await world.call("alice", "GET", _a(world, "/keys"))
    assert listed.json()["items"] == []
