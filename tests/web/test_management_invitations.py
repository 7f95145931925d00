"""/api/v1/orgs/{org}/invitations (web/routes/api_v1/invitations.py): invitations over the
management API. The test server has no mail server: asking for mail is refused before anything
is written; ``"mail": false`` answers the link, which the invitation page then accepts."""

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


async def _pending(world: World) -> list[dict[str, Any]]:
    listed = await world.call("alice", "GET", _a(world, "/invitations"))
    assert listed.status_code == 200, listed.text
    return [i for i in listed.json()["items"] if i["state"] == "pending"]


async def test_invite_resend_and_withdraw(world: World) -> None:
    body = {"email": "New.Person@Example.com", "roles": ["member"]}
    refused = await world.call("alice", "POST", _a(world, "/invitations"), json=body)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "mail_not_configured"
    assert await _pending(world) == []  # nothing written
    made = await world.call(
        "alice", "POST", _a(world, "/invitations"), json={**body, "mail": False}
    )
    assert made.status_code == 201, made.text
    invitation = made.json()
    assert invitation["mail"] == "not_sent" and "/invitations/ost_inv_" in invitation["link"]
    assert invitation["email"] == "new.person@example.com"
    assert invitation["inviter"] == world.users["alice"]
    assert [i["id"] for i in await _pending(world)] == [invitation["id"]]
    again = await world.call(
        "alice",
        "POST",
        _a(world, f"/invitations/{invitation['id']}/resend"),
        json={"mail": False},
    )
    assert again.status_code == 200, again.text
    assert again.json()["link"] != invitation["link"]
    gone = await world.call("alice", "DELETE", _a(world, f"/invitations/{invitation['id']}"))
    assert gone.status_code == 204
    assert await _pending(world) == []
    twice = await world.call("alice", "DELETE", _a(world, f"/invitations/{invitation['id']}"))
    assert twice.status_code == 409


async def test_no_escalation_and_members_manage_needed(world: World) -> None:
    owner = {"email": "boss@example.com", "roles": ["owner"], "mail": False}
    by_admin = await world.call("dave", "POST", _a(world, "/invitations"), json=owner)
    assert by_admin.status_code == 403
    assert by_admin.json()["error"]["code"] == "permission_escalation"
    member = {"email": "m@example.com", "roles": ["reader"], "mail": False}
    by_member = await world.call("carol", "POST", _a(world, "/invitations"), json=member)
    assert by_member.status_code == 403 and "members:manage" in by_member.text
    assert await _pending(world) == []
    by_owner = await world.call("alice", "POST", _a(world, "/invitations"), json=owner)
    assert by_owner.status_code == 201


async def test_an_api_key_invites_and_is_named_as_the_inviter(world: World) -> None:
    async with world.app.state.runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            world.orgs["A"]["id"],
            ("user", world.users["alice"]),
            name="automation",
            permissions=["members:manage", "members:read", "models:read", "keys:read"],
            actor=None,
        )
    made = await world.client.post(
        _a(world, "/invitations"),
        json={"email": "k@example.com", "roles": ["reader"], "mail": False},
        headers={"Authorization": f"Bearer {issued.secret}"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["inviter"] == f"key:{issued.key.id}"
    # the key holds no more than a reader's permissions and members:*: it cannot invite an admin
    admin = await world.client.post(
        _a(world, "/invitations"),
        json={"email": "a@example.com", "roles": ["admin"], "mail": False},
        headers={"Authorization": f"Bearer {issued.secret}"},
    )
    assert admin.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address", "roles": ["reader"], "mail": False},
        {"email": "x@example.com", "roles": [], "mail": False},
        {"email": "x@example.com", "roles": ["no-such-role"], "mail": False},
        {"email": "x@example.com", "roles": ["reader"], "mail": "maybe"},
        {"email": "x\u0000@example.com", "roles": ["reader"], "mail": False},
    ],
)
async def test_bad_invitations_get_clear_errors_and_write_nothing(
    world: World, body: dict[str, Any]
) -> None:
    response = await world.call("alice", "POST", _a(world, "/invitations"), json=body)
    assert response.status_code in (404, 422), response.text
    assert response.json()["error"]["message"]
    assert await _pending(world) == []
