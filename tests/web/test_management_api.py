"""The management API's endpoints (issue 12, section 4): happy paths and refusals, paging,
errors' shape, audit, and escalation attempts. Authentication is in
test_management_auth.py; the tenancy sweep in test_management_tenancy.py."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from ostiary.protocol.permissions import PERMISSIONS
from tests.web.management_helpers import World, add_user, build_world, mint


@pytest.fixture
async def world(app: Any, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


def _a(world: World, rest: str = "") -> str:
    return f"/api/v1/orgs/{world.orgs['A']['id']}{rest}"


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


async def _audit(app: Any) -> list[Any]:
    from ostiary.storage.sqla.repositories import SqlAuditStore

    async with app.state.runtime.unit() as unit:
        return list(reversed(await SqlAuditStore(unit.conn).recent(1000)))


# -- organizations ------------------------------------------------------------------------------


async def test_creating_an_organization_makes_the_caller_its_owner(world: World) -> None:
    response = await world.call("erin", "POST", "/api/v1/orgs", json={"name": "Erin's Lab"})
    assert response.status_code == 201
    org = response.json()
    assert org["slug"] == "erin-s-lab" and org["name"] == "Erin's Lab"
    members = (await world.call("erin", "GET", f"/api/v1/orgs/{org['slug']}/members")).json()
    assert [(m["email"], [r["role"] for r in m["roles"]]) for m in members["items"]] == [
        ("erin@example.com", ["owner"])
    ]
    taken = await world.call("bob", "POST", "/api/v1/orgs", json={"name": "x", "slug": org["slug"]})
    _error(taken, 409, "conflict")


async def test_listing_organizations_shows_only_the_callers(world: World) -> None:
    listed = (await world.call("alice", "GET", "/api/v1/orgs")).json()
    assert [o["id"] for o in listed["items"]] == [world.orgs["A"]["id"]]
    assert listed["next_cursor"] is None
    assert (await world.call("erin", "GET", "/api/v1/orgs")).json()["items"] == []


async def test_show_rename_and_delete_an_organization(world: World, app: Any) -> None:
    shown = await world.call("carol", "GET", _a(world))
    assert shown.status_code == 200 and shown.json()["id"] == world.orgs["A"]["id"]
    by_slug = await world.call("carol", "GET", f"/api/v1/orgs/{world.orgs['A']['slug']}")
    assert by_slug.json()["id"] == world.orgs["A"]["id"]
    message = _error(
        await world.call("dave", "PATCH", _a(world), json={"name": "N"}), 403, "forbidden"
    )
    assert "org:manage" in message
    renamed = await world.call("alice", "PATCH", _a(world), json={"name": "Acme", "slug": "acme"})
    assert renamed.status_code == 200 and renamed.json()["slug"] == "acme"
    assert renamed.json()["plan"] is None and renamed.json()["require_acr"] is None
    # The plan is the operator's (CLI), not the organization's own.
    refused = await world.call("alice", "PATCH", _a(world), json={"plan": "enterprise"})
    assert refused.status_code == 422, refused.text
    assert (await world.call("carol", "GET", _a(world))).json()["plan"] is None
    # The sign-in class its org-scoped clients need is the owner's to set (org:manage).
    mfa = "urn:ostiary:acr:mfa"
    _error(
        await world.call("dave", "PATCH", _a(world), json={"require_acr": mfa}), 403, "forbidden"
    )
    required = await world.call("alice", "PATCH", _a(world), json={"require_acr": mfa})
    assert required.status_code == 200 and required.json()["require_acr"] == mfa
    kept = await world.call("alice", "PATCH", _a(world), json={"name": "Acme Inc"})
    assert kept.json()["require_acr"] == mfa  # absent: unchanged
    async with app.state.runtime.unit() as unit:
        assert (await unit.orgs.get(world.orgs["A"]["id"])).require_acr == mfa
    _error(
        await world.call("alice", "PATCH", _a(world), json={"require_acr": "gold"}), 422, "invalid"
    )
    lifted = await world.call("alice", "PATCH", _a(world), json={"require_acr": None})
    assert lifted.status_code == 200 and lifted.json()["require_acr"] is None
    _error(
        await world.call("alice", "PATCH", _a(world), json={"slug": world.orgs["B"]["slug"]}),
        409,
        "conflict",
    )
    _error(await world.call("dave", "DELETE", _a(world)), 403, "forbidden")
    assert (await world.call("alice", "DELETE", _a(world))).status_code == 204
    _error(await world.call("alice", "GET", _a(world)), 404, "not_found")
    assert (await world.call("carol", "GET", "/api/v1/orgs")).json()["items"] == []
    actions = [(e.action, e.outcome, e.actor) for e in await _audit(app)]
    assert ("org.delete", "success", world.users["alice"]) in actions
    assert ("api.org.delete", "failure", world.users["dave"]) in actions


# -- projects -----------------------------------------------------------------------------------


async def test_projects_lifecycle(world: World) -> None:
    _error(
        await world.call("carol", "POST", _a(world, "/projects"), json={"name": "P"}),
        403,
        "forbidden",
    )
    made = await world.call("dave", "POST", _a(world, "/projects"), json={"name": "Chat Bot"})
    assert made.status_code == 201
    project = made.json()
    assert project["slug"] == "chat-bot"
    listed = (await world.call("carol", "GET", _a(world, "/projects"))).json()
    assert [p["id"] for p in listed["items"]] == [project["id"]]
    got = await world.call("carol", "GET", _a(world, "/projects/chat-bot"))
    assert got.json()["id"] == project["id"]
    patched = await world.call(
        "dave", "PATCH", _a(world, f"/projects/{project['id']}"), json={"name": "Bot"}
    )
    assert patched.json()["name"] == "Bot" and patched.json()["slug"] == "chat-bot"
    # A project role and an assignment in the project go with the project.
    role = await world.call(
        "dave",
        "POST",
        _a(world, "/roles"),
        json={"name": "bot-reader", "permissions": ["models:read"], "project": "chat-bot"},
    )
    assert role.status_code == 201, role.text
    assigned = await world.call(
        "dave",
        "PUT",
        _a(world, f"/members/{world.users['carol']}/roles"),
        json={"roles": ["bot-reader"], "project": "chat-bot"},
    )
    assert assigned.status_code == 200, assigned.text
    assert {"role": "bot-reader", "role_id": role.json()["id"], "project_id": project["id"]} in (
        assigned.json()["roles"]
    )
    assert (await world.call("dave", "DELETE", _a(world, "/projects/chat-bot"))).status_code == 204
    _error(await world.call("dave", "GET", _a(world, "/projects/chat-bot")), 404, "not_found")
    _error(
        await world.call("dave", "GET", _a(world, f"/roles/{role.json()['id']}")), 404, "not_found"
    )
    carol = (await world.call("dave", "GET", _a(world, f"/members/{world.users['carol']}"))).json()
    assert [r["role"] for r in carol["roles"]] == ["member"]


# -- members ------------------------------------------------------------------------------------


async def test_members_add_show_set_roles_and_remove(world: World) -> None:
    _error(
        await world.call(
            "carol",
            "POST",
            _a(world, "/members"),
            json={"email": "erin@example.com", "roles": ["reader"]},
        ),
        403,
        "forbidden",
    )
    added = await world.call(
        "dave",
        "POST",
        _a(world, "/members"),
        json={"email": "ERIN@example.com", "roles": ["reader"]},
    )
    assert added.status_code == 201, added.text
    assert added.json()["email"] == "erin@example.com"
    again = await world.call(
        "dave",
        "POST",
        _a(world, "/members"),
        json={"email": "erin@example.com", "roles": ["reader"]},
    )
    _error(again, 409, "conflict")
    nobody = await world.call(
        "dave",
        "POST",
        _a(world, "/members"),
        json={"email": "nobody@example.com", "roles": ["reader"]},
    )
    _error(nobody, 404, "not_found")
    erin = world.users["erin"]
    shown = (await world.call("carol", "GET", _a(world, f"/members/{erin}"))).json()
    assert [r["role"] for r in shown["roles"]] == ["reader"]
    _error(
        await world.call("carol", "GET", _a(world, f"/members/{world.users['bob']}")),
        404,
        "not_a_member",
    )
    changed = await world.call(
        "dave", "PUT", _a(world, f"/members/{erin}/roles"), json={"roles": ["member"]}
    )
    assert [r["role"] for r in changed.json()["roles"]] == ["member"]
    unknown = await world.call(
        "dave", "PUT", _a(world, f"/members/{erin}/roles"), json={"roles": ["nope"]}
    )
    _error(unknown, 404, "not_found")
    assert (await world.call("dave", "DELETE", _a(world, f"/members/{erin}"))).status_code == 204
    _error(await world.call("dave", "GET", _a(world, f"/members/{erin}")), 404, "not_a_member")


async def test_members_listing_pages_with_a_bounded_number_of_queries(
    world: World, app: Any
) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = app.state.runtime.unit_engine.sync_engine

    async def queries_for(limit: int) -> int:
        """The fewest statements of three identical requests: a request may also catch up
        with other connections' commits (SQLite) or fill the permission cache, which is not
        the listing's cost."""
        counts = []
        for _ in range(3):
            statements.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                page = await world.call(
                    "alice", "GET", _a(world, "/members"), params={"limit": limit}
                )
            finally:
                event.remove(engine, "before_cursor_execute", count)
            assert len(page.json()["items"]) == limit
            counts.append(len(statements))
        return min(counts)

    # Every member has a custom role and a group, so each page needs every kind of lookup.
    await world.call("alice", "POST", _a(world, "/roles"), json={"name": "custom"})
    await world.call("alice", "POST", _a(world, "/groups"), json={"name": "g"})
    for name in ("alice", "carol", "dave"):
        user = world.users[name]
        assert (
            await world.call("alice", "POST", _a(world, f"/groups/g/members/{user}"))
        ).status_code == 204
        roles = ["owner", "custom"] if name == "alice" else ["custom"]
        put = await world.call(
            "alice", "PUT", _a(world, f"/members/{user}/roles"), json={"roles": roles}
        )
        assert put.status_code == 200, put.text
    small = await queries_for(1)
    assert small > 0, "the statement counter saw nothing"
    large = await queries_for(3)
    assert large == small  # no query per member
    for n in range(7):
        email = f"user{n}@example.com"
        await add_user(app, email, f"User {n}")
        response = await world.call(
            "alice", "POST", _a(world, "/members"), json={"email": email, "roles": ["reader"]}
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await world.call("alice", "GET", _a(world, "/members"), params=params)).json()
        assert len(page["items"]) <= 3
        seen += [m["user_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10


async def test_the_last_owner_can_neither_leave_nor_be_demoted_nor_removed(world: World) -> None:
    alice = world.users["alice"]
    _error(await world.call("alice", "POST", _a(world, "/leave")), 409, "last_owner")
    demoted = await world.call(
        "alice", "PUT", _a(world, f"/members/{alice}/roles"), json={"roles": ["admin"]}
    )
    _error(demoted, 409, "last_owner")
    _error(await world.call("alice", "DELETE", _a(world, f"/members/{alice}")), 409, "last_owner")
    # With a second owner, one may leave.
    promoted = await world.call(
        "alice",
        "PUT",
        _a(world, f"/members/{world.users['carol']}/roles"),
        json={"roles": ["owner"]},
    )
    assert promoted.status_code == 200
    assert (await world.call("alice", "POST", _a(world, "/leave"))).status_code == 204
    _error(await world.call("alice", "GET", _a(world)), 404, "not_found")


async def test_concurrent_demotions_of_the_last_two_owners_keep_one(world: World) -> None:
    carol = world.users["carol"]
    alice = world.users["alice"]
    await world.call(
        "alice", "PUT", _a(world, f"/members/{carol}/roles"), json={"roles": ["owner"]}
    )
    results = await asyncio.gather(
        world.call(
            "alice", "PUT", _a(world, f"/members/{alice}/roles"), json={"roles": ["member"]}
        ),
        world.call(
            "carol", "PUT", _a(world, f"/members/{carol}/roles"), json={"roles": ["member"]}
        ),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    members = (await world.call("dave", "GET", _a(world, "/members"))).json()["items"]
    owners = [m for m in members if any(r["role"] == "owner" for r in m["roles"])]
    assert len(owners) == 1


# -- escalation ---------------------------------------------------------------------------------


async def test_an_admin_cannot_make_or_unmake_an_owner(world: World) -> None:
    carol, alice = world.users["carol"], world.users["alice"]
    granting = await world.call(
        "dave", "PUT", _a(world, f"/members/{carol}/roles"), json={"roles": ["owner"]}
    )
    assert "owner" in _error(granting, 403, "permission_escalation")
    demoting = await world.call(
        "dave", "PUT", _a(world, f"/members/{alice}/roles"), json={"roles": ["admin"]}
    )
    _error(demoting, 403, "permission_escalation")
    _error(
        await world.call("dave", "DELETE", _a(world, f"/members/{alice}")),
        403,
        "permission_escalation",
    )
    adding = await world.call(
        "dave",
        "POST",
        _a(world, "/members"),
        json={"email": "erin@example.com", "roles": ["owner"]},
    )
    _error(adding, 403, "permission_escalation")
    # Nothing of the refused attempts is left.
    erin = await world.call("alice", "GET", _a(world, f"/members/{world.users['erin']}"))
    _error(erin, 404, "not_a_member")


async def test_roles_cannot_smuggle_permissions_the_caller_lacks(world: World) -> None:
    # dave (admin) lacks org:manage, and '*'.
    for body in (
        {"name": "r1", "permissions": ["org:manage"]},
        {"name": "r2", "permissions": ["*"]},
        {"name": "r3", "includes": ["owner"]},
    ):
        _error(
            await world.call("dave", "POST", _a(world, "/roles"), json=body),
            403,
            "permission_escalation",
        )
    made = await world.call(
        "alice", "POST", _a(world, "/roles"), json={"name": "boss", "permissions": ["org:manage"]}
    )
    assert made.status_code == 201
    ok = await world.call(
        "dave", "POST", _a(world, "/roles"), json={"name": "ok", "permissions": ["models:read"]}
    )
    assert ok.status_code == 201
    sneaky = await world.call("dave", "PATCH", _a(world, "/roles/ok"), json={"includes": ["boss"]})
    _error(sneaky, 403, "permission_escalation")
    _error(
        await world.call("dave", "PATCH", _a(world, "/roles/boss"), json={"permissions": []}),
        403,
        "permission_escalation",
    )
    _error(
        await world.call("dave", "DELETE", _a(world, "/roles/boss")), 403, "permission_escalation"
    )
    group = await world.call(
        "dave", "POST", _a(world, "/groups"), json={"name": "g", "roles": ["boss"]}
    )
    _error(group, 403, "permission_escalation")
    # A group alice gave 'boss' cannot be joined through dave.
    await world.call(
        "alice", "POST", _a(world, "/groups"), json={"name": "bosses", "roles": ["boss"]}
    )
    joining = await world.call(
        "dave", "POST", _a(world, f"/groups/bosses/members/{world.users['dave']}")
    )
    _error(joining, 403, "permission_escalation")


async def test_members_lacking_a_permission_get_403_naming_it(world: World) -> None:
    for method, path, body, permission in (
        ("POST", "/roles", {"name": "x"}, "roles:manage"),
        ("POST", "/groups", {"name": "x"}, "groups:manage"),
        ("DELETE", f"/members/{world.users['dave']}", None, "members:manage"),
    ):
        response = await world.call("carol", method, _a(world, path), json=body)
        assert permission in _error(response, 403, "forbidden")


# -- roles --------------------------------------------------------------------------------------


async def test_roles_lifecycle_cycles_and_builtins(world: World) -> None:
    listed = (await world.call("carol", "GET", _a(world, "/roles"))).json()
    assert [r["name"] for r in listed["items"]] == ["owner", "admin", "member", "reader"]
    assert all(r["builtin"] for r in listed["items"])
    a = await world.call(
        "alice", "POST", _a(world, "/roles"), json={"name": "a", "permissions": ["models:read"]}
    )
    b = await world.call(
        "alice", "POST", _a(world, "/roles"), json={"name": "b", "includes": ["a"]}
    )
    assert a.status_code == b.status_code == 201
    cycle = await world.call("alice", "PATCH", _a(world, "/roles/a"), json={"includes": ["b"]})
    assert "a -> b -> a" in _error(cycle, 409, "role_cycle")
    _error(
        await world.call("alice", "PATCH", _a(world, "/roles/admin"), json={"name": "x"}),
        409,
        "builtin_role",
    )
    _error(await world.call("alice", "DELETE", _a(world, "/roles/owner")), 409, "builtin_role")
    bad = await world.call(
        "alice", "POST", _a(world, "/roles"), json={"name": "c", "permissions": ["models:raed"]}
    )
    assert "models:read" in _error(bad, 422, "invalid_permission")
    renamed = await world.call(
        "alice", "PATCH", _a(world, "/roles/a"), json={"name": "a2", "description": "d"}
    )
    assert renamed.json()["name"] == "a2" and renamed.json()["description"] == "d"
    got = (await world.call("carol", "GET", _a(world, f"/roles/{a.json()['id']}"))).json()
    assert got["name"] == "a2" and got["permissions"] == ["models:read"]
    assert (await world.call("alice", "DELETE", _a(world, "/roles/b"))).status_code == 204
    _error(await world.call("alice", "GET", _a(world, "/roles/b")), 404, "not_found")


# -- groups -------------------------------------------------------------------------------------


async def test_groups_lifecycle_grants_through_membership(world: World) -> None:
    carol = world.users["carol"]
    made = await world.call(
        "dave", "POST", _a(world, "/groups"), json={"name": "ops", "roles": ["reader"]}
    )
    assert made.status_code == 201, made.text
    group = made.json()
    assert [r["role"] for r in group["roles"]] == ["reader"] and group["members"] == []
    assert (
        await world.call("dave", "POST", _a(world, f"/groups/ops/members/{carol}"))
    ).status_code == 204
    _error(
        await world.call("dave", "POST", _a(world, f"/groups/ops/members/{carol}")), 409, "conflict"
    )
    outsider = await world.call(
        "dave", "POST", _a(world, f"/groups/ops/members/{world.users['erin']}")
    )
    _error(outsider, 404, "not_a_member")
    # The group's roles reach carol: with roles:manage through it, she may create a role.
    custom = await world.call(
        "alice", "POST", _a(world, "/roles"), json={"name": "rm", "permissions": ["roles:manage"]}
    )
    assert custom.status_code == 201
    _error(
        await world.call("carol", "POST", _a(world, "/roles"), json={"name": "x"}), 403, "forbidden"
    )
    put = await world.call(
        "alice", "PUT", _a(world, "/groups/ops/roles"), json={"roles": ["reader", "rm"]}
    )
    assert sorted(r["role"] for r in put.json()["roles"]) == ["reader", "rm"]
    assert (
        await world.call("carol", "POST", _a(world, "/roles"), json={"name": "x"})
    ).status_code == 201
    shown = (await world.call("carol", "GET", _a(world, "/groups/ops"))).json()
    assert shown["members"] == [carol]
    listed = (await world.call("carol", "GET", _a(world, "/groups"))).json()
    assert [g["name"] for g in listed["items"]] == ["ops"] and listed["items"][0]["members"] is None
    member = (await world.call("carol", "GET", _a(world, f"/members/{carol}"))).json()
    assert [g["name"] for g in member["groups"]] == ["ops"]
    assert (
        await world.call("dave", "DELETE", _a(world, f"/groups/ops/members/{carol}"))
    ).status_code == 204
    _error(
        await world.call("carol", "POST", _a(world, "/roles"), json={"name": "y"}), 403, "forbidden"
    )
    _error(
        await world.call("dave", "DELETE", _a(world, f"/groups/ops/members/{carol}")),
        404,
        "not_found",
    )
    # (alice gave the group rm; dave, an admin, holds roles:manage and may delete it.)
    assert (await world.call("dave", "DELETE", _a(world, "/groups/ops"))).status_code == 204
    _error(await world.call("dave", "GET", _a(world, "/groups/ops")), 404, "not_found")


async def test_group_roles_in_a_project(world: World) -> None:
    await world.call("alice", "POST", _a(world, "/projects"), json={"name": "proj"})
    await world.call("alice", "POST", _a(world, "/groups"), json={"name": "g"})
    put = await world.call(
        "alice", "PUT", _a(world, "/groups/g/roles"), json={"roles": ["member"], "project": "proj"}
    )
    assert put.status_code == 200, put.text
    assert [r["project_id"] is not None for r in put.json()["roles"]] == [True]


# -- paging and errors --------------------------------------------------------------------------


async def test_cursors_are_bound_to_their_list_and_organization(world: World) -> None:
    for n in range(3):
        await world.call("alice", "POST", _a(world, "/projects"), json={"name": f"p{n}"})
        await world.call(
            "bob", "POST", f"/api/v1/orgs/{world.orgs['B']['id']}/projects", json={"name": f"q{n}"}
        )
    first = (await world.call("alice", "GET", _a(world, "/projects"), params={"limit": 1})).json()
    cursor = first["next_cursor"]
    assert cursor
    second = await world.call(
        "alice", "GET", _a(world, "/projects"), params={"limit": 1, "cursor": cursor}
    )
    assert second.status_code == 200 and second.json()["items"][0]["id"] != first["items"][0]["id"]
    # Another list of the same organization, or the same list of another organization.
    _error(
        await world.call("alice", "GET", _a(world, "/groups"), params={"cursor": cursor}),
        400,
        "invalid_cursor",
    )
    other = f"/api/v1/orgs/{world.orgs['B']['id']}/projects"
    _error(await world.call("bob", "GET", other, params={"cursor": cursor}), 400, "invalid_cursor")
    payload, tag = cursor.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for tampered in (
        f"{flipped}.{tag}",
        f"{payload}.{tag[:-1]}",
        payload,
        "garbage",
        "a.b.c",
        "%00",
    ):
        response = await world.call(
            "alice", "GET", _a(world, "/projects"), params={"cursor": tampered}
        )
        _error(response, 400, "invalid_cursor")


@pytest.mark.parametrize("limit", ["0", "-1", "201", "99999999999999999999", "x"])
async def test_limits_out_of_bounds_are_422(world: World, limit: str) -> None:
    response = await world.call("alice", "GET", _a(world, "/members"), params={"limit": limit})
    _error(response, 422, "invalid_request")


async def test_limit_extremes_are_served(world: World) -> None:
    for limit in (1, 200):
        response = await world.call("alice", "GET", _a(world, "/members"), params={"limit": limit})
        assert response.status_code == 200 and len(response.json()["items"]) == min(limit, 3)


async def test_hostile_bodies_get_json_errors(world: World) -> None:
    raw = await world.client.post(
        _a(world, "/projects"),
        content=b"{not json",
        headers={**world.auth("alice"), "Content-Type": "application/json"},
    )
    _error(raw, 400, "invalid_json")
    for body in (
        {"name": "x", "extra": 1},
        {"name": ""},
        {"name": "a\x00b"},
        {"name": "x" * 201},
        {"name": "x", "slug": "Not A Slug"},
        [],
        "name",
    ):
        response = await world.call("alice", "POST", _a(world, "/projects"), json=body)
        _error(response, 422, "invalid_request")
    nul = await world.call("alice", "GET", "/api/v1/orgs/a%00b")
    _error(nul, 422, "invalid_request")
    unknown = await world.call("alice", "GET", "/api/v1/nothing-here")
    _error(unknown, 404, "not_found")
    method = await world.client.request("TRACE", _a(world), headers=world.auth("alice"))
    _error(method, 405, "method_not_allowed")


async def test_refused_changes_are_audited_with_actor_and_organization(
    world: World, app: Any
) -> None:
    await world.call("carol", "POST", _a(world, "/roles"), json={"name": "x"})
    await world.call("alice", "POST", _a(world, "/roles"), json={"name": "y"})
    events = await _audit(app)
    refused = [e for e in events if e.action == "api.role.create" and e.outcome == "failure"]
    assert len(refused) == 1
    assert refused[0].actor == world.users["carol"]
    assert refused[0].details["organization_id"] == world.orgs["A"]["id"]
    assert refused[0].organization_id == world.orgs["A"]["id"]  # the trail's org slice
    assert refused[0].details["code"] == "forbidden"
    made = [e for e in events if e.action == "rbac.role.create"]
    assert made[-1].actor == world.users["alice"]
    assert made[-1].details["organization_id"] == world.orgs["A"]["id"]
    assert made[-1].organization_id == world.orgs["A"]["id"]


async def test_every_permission_name_is_known_to_the_catalog() -> None:
    # The endpoints' permissions (docstrings and require calls) are catalog entries.
    for name in (
        "org:manage",
        "projects:manage",
        "members:read",
        "members:manage",
        "roles:manage",
        "groups:manage",
    ):
        assert name in PERMISSIONS


async def test_token_for_a_user_in_no_org_still_lists(world: World, app: Any) -> None:
    token = await mint(app, world.users["erin"])
    response = await world.client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json() == {"items": [], "next_cursor": None}


async def test_concurrent_duplicate_changes_give_one_success_and_clean_refusals(
    world: World,
) -> None:
    body = {"email": "erin@example.com", "roles": ["reader"]}
    added = await asyncio.gather(
        *(world.call("alice", "POST", _a(world, "/members"), json=body) for _ in range(4))
    )
    assert sorted(r.status_code for r in added) == [201, 409, 409, 409]
    made = await asyncio.gather(
        *(world.call("erin", "POST", "/api/v1/orgs", json={"name": "Same Name"}) for _ in range(3))
    )
    assert [r.status_code for r in made] == [201, 201, 201]
    assert len({r.json()["slug"] for r in made}) == 3
    groups = await asyncio.gather(
        *(world.call("alice", "POST", _a(world, "/groups"), json={"name": "dup"}) for _ in range(3))
    )
    assert sorted(r.status_code for r in groups) == [201, 409, 409]
    listed = (await world.call("alice", "GET", _a(world, "/groups"))).json()["items"]
    assert [g["name"] for g in listed] == ["dup"]
