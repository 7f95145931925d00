"""/api/v1/orgs/{org}/policies (web/routes/api_v1/policies.py): an organization's Cedar policies
over the management API: set (validated first), shown, paged by version, dry-run against the
decision log, rolled back; who may do which; and that what is set is what decisions use."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ostiary.storage.sqla.repositories import SqlAuditStore
from tests.web.management_helpers import World, build_world

FORBID_READ = (
    '@id("no-m1")\nforbid (principal, action == Action::"models:read", resource == model::"m1");'
)
PERMIT_ALL = "permit (principal, action, resource);"


@pytest.fixture
async def world(app: Any, client: httpx.AsyncClient) -> World:
    return await build_world(app, client)


def _a(world: World, rest: str = "") -> str:
    return f"/api/v1/orgs/{world.orgs['A']['id']}/policies{rest}"


async def _audit(world: World) -> list[Any]:
    async with world.app.state.runtime.unit() as unit:
        return list(await SqlAuditStore(unit.conn).recent(200))


async def _decide(world: World, who: str, subject: str, action: str, model: str) -> dict[str, Any]:
    """An AuthZEN decision in A, asked by ``who`` (a PEP holding access:evaluate)."""
    response = await world.client.post(
        "/access/v1/evaluation",
        headers={**world.auth(who), "Ostiary-Organization": world.orgs["A"]["id"]},
        json={
            "subject": {"type": "user", "id": world.users[subject]},
            "action": {"name": action},
            "resource": {"type": "model", "id": model},
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_policies_set_over_the_api_decide_and_read_back(world: World) -> None:
    assert (await _decide(world, "alice", "carol", "models:read", "m1"))["decision"] is True
    saved = await world.call(
        "alice", "PUT", _a(world), json={"policies": FORBID_READ, "note": "no m1"}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1
    assert saved.json()["note"] == "no m1"
    assert saved.json()["created_by"] == world.users["alice"]
    denied = await _decide(world, "alice", "carol", "models:read", "m1")
    assert denied["decision"] is False
    assert "no-m1" in denied["context"]["reason_admin"]["en"]
    assert (await _decide(world, "alice", "carol", "models:read", "m2"))["decision"] is True

    shown = await world.call("dave", "GET", _a(world))  # an admin reads
    assert shown.status_code == 200, shown.text
    assert shown.json()["active"]["policies"] == FORBID_READ
    assert shown.json()["active"]["schema"] == ""
    assert shown.json()["deployment_version"] is None
    async with world.app.state.runtime.unit() as unit:
        await unit.policies.set(None, PERMIT_ALL, note="operator", actor=None)
    shown = await world.call("alice", "GET", _a(world))
    assert shown.json()["deployment_version"] == 1
    assert PERMIT_ALL not in shown.text  # the operator's text is not shown to an organization

    events = await _audit(world)
    setting = [e for e in events if e.action == "policies.set" and e.outcome == "success"]
    assert any(e.actor == world.users["alice"] for e in setting)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"policies": "permit (principal, action, resource);\n\nforbid (principal"}, "line 3"),
        ({"policies": 'permit (principal, action == Action::"no:such", resource);'}, "line 1"),
        (
            {"policies": PERMIT_ALL, "schema": "entity Todo { ownerID: Strin };"},
            "",
        ),
    ],
)
async def test_a_policy_cedar_refuses_is_a_422_naming_the_line_and_saves_nothing(
    world: World, body: dict[str, Any], where: str
) -> None:
    refused = await world.call("alice", "PUT", _a(world), json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_policy"
    assert where in error["message"]
    assert (await world.call("alice", "GET", _a(world))).json()["active"] is None
    listed = await world.call("alice", "GET", _a(world, "/versions"))
    assert listed.json() == {"items": [], "next_cursor": None}
    events = await _audit(world)
    assert any(e.action == "api.policies.set" and e.outcome == "failure" for e in events)


@pytest.mark.parametrize(
    "body",
    [
        {"policies": PERMIT_ALL, "extra": 1},
        {"policies": PERMIT_ALL, "schema_text": ""},  # the field is "schema"
        {"policies": "permit (principal, action, resource);\x00"},
        {"policies": "x" * 200_001},
        {"policies": PERMIT_ALL, "note": "n" * 201},
        {"schema": ""},
        {"policies": 3},
    ],
)
async def test_malformed_bodies_are_refused_before_anything_runs(
    world: World, body: dict[str, Any]
) -> None:
    refused = await world.call("alice", "PUT", _a(world), json=body)
    assert refused.status_code in (400, 422), refused.text
    assert refused.json()["error"]["message"]
    assert (await world.call("alice", "GET", _a(world))).json()["active"] is None


async def test_reading_needs_policies_read_and_changing_policies_manage(world: World) -> None:
    for method, rest, body in (
        ("GET", "", None),
        ("GET", "/versions", None),
        ("PUT", "", {"policies": PERMIT_ALL}),
        ("POST", "/dry-run", {"policies": PERMIT_ALL}),
        ("POST", "/rollback", {"version": 1}),
    ):
        refused = await world.call("carol", method, _a(world, rest), json=body)  # a member
        assert refused.status_code == 403, (method, rest, refused.text)
        wanted = "policies:read" if method == "GET" else "policies:manage"
        assert wanted in refused.json()["error"]["message"]
    assert (await world.call("alice", "GET", _a(world))).json()["active"] is None

    org = world.orgs["A"]["id"]
    async with world.app.state.runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            org, ("user", world.users["alice"]), permissions=["policies:read"], actor=None
        )
    reader = {"Authorization": f"Bearer {issued.secret}"}
    assert (await world.client.get(_a(world), headers=reader)).status_code == 200
    refused = await world.client.put(_a(world), headers=reader, json={"policies": PERMIT_ALL})
    assert refused.status_code == 403 and "policies:manage" in refused.text
    made = await world.call("dave", "PUT", _a(world), json={"policies": PERMIT_ALL})  # admin
    assert made.status_code == 200, made.text


async def test_versions_are_paged_newest_first_and_a_rollback_saves_the_next_one(
    world: World,
) -> None:
    texts = [f'@id("v{n}")\n{PERMIT_ALL}' for n in (1, 2, 3)]
    for text in texts:
        saved = await world.call("alice", "PUT", _a(world), json={"policies": text})
        assert saved.status_code == 200, saved.text
    first = await world.call("alice", "GET", _a(world, "/versions?limit=2"))
    assert [v["version"] for v in first.json()["items"]] == [3, 2]
    cursor = first.json()["next_cursor"]
    assert cursor
    rest = await world.call("alice", "GET", _a(world, "/versions"), params={"cursor": cursor})
    assert [v["version"] for v in rest.json()["items"]] == [1]
    assert rest.json()["next_cursor"] is None
    assert "policies" not in rest.json()["items"][0]  # the list carries no texts
    # A cursor is good for this list of this organization only.
    b = f"/api/v1/orgs/{world.orgs['B']['id']}/policies/versions"
    elsewhere = await world.call("bob", "GET", b, params={"cursor": cursor})
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["code"] == "invalid_cursor"

    one = await world.call("alice", "GET", _a(world, "/versions/1"))
    assert one.json()["policies"] == texts[0]
    restored = await world.call("alice", "POST", _a(world, "/rollback"), json={"version": 1})
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 4
    assert restored.json()["note"] == "rollback to v1"
    shown = await world.call("alice", "GET", _a(world))
    assert shown.json()["active"]["version"] == 4
    assert shown.json()["active"]["policies"] == texts[0]
    for method, rest_path, body in (
        ("POST", "/rollback", {"version": 99}),
        ("GET", "/versions/99", None),
    ):
        missing = await world.call("alice", method, _a(world, rest_path), json=body)
        assert missing.status_code == 404, missing.text
    latest = await world.call("alice", "GET", _a(world, "/versions?limit=1"))
    assert [v["version"] for v in latest.json()["items"]] == [4]


async def test_a_dry_run_lists_the_logged_decisions_a_candidate_would_change(
    world: World,
) -> None:
    assert (await _decide(world, "alice", "carol", "models:read", "m1"))["decision"] is True
    assert (await _decide(world, "alice", "carol", "models:read", "m2"))["decision"] is True
    ran = await world.call("alice", "POST", _a(world, "/dry-run"), json={"policies": FORBID_READ})
    assert ran.status_code == 200, ran.text
    result = ran.json()
    assert result["replayed"] == 2
    assert result["changed"] == 1
    change = result["changes"][0]
    assert change["resource"]["id"] == "m1"
    assert change["action"] == "models:read"
    assert change["subject"]["id"] == world.users["carol"]
    assert (change["was"], change["would_be"]) == (True, False)
    assert "no-m1" in change["reason"]
    # A dry-run saves nothing; a candidate Cedar refuses is a 422.
    assert (await world.call("alice", "GET", _a(world))).json()["active"] is None
    bad = await world.call("alice", "POST", _a(world, "/dry-run"), json={"policies": "permit ("})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_policy"
    few = await world.call(
        "alice", "POST", _a(world, "/dry-run"), json={"policies": FORBID_READ, "limit": 1}
    )
    assert few.json()["replayed"] == 1


async def test_an_organization_extends_the_schema_with_its_own_types(world: World) -> None:
    schema = (
        'entity Todo { ownerID: String };\naction "can_read_todo" appliesTo '
        "{ principal: [User], resource: [Todo], context: Context };"
    )
    policies = (
        'permit (principal, action == Action::"can_read_todo", resource)\n'
        "when { resource.ownerID == principal.email };"
    )
    saved = await world.call(
        "alice", "PUT", _a(world), json={"policies": policies, "schema": schema}
    )
    assert saved.status_code == 200, saved.text
    shown = (await world.call("alice", "GET", _a(world, "/versions/1"))).json()
    assert (shown["policies"], shown["schema"]) == (policies, schema)
    # without the extension the same policies name an unknown action and type: refused
    refused = await world.call("alice", "PUT", _a(world), json={"policies": policies})
    assert refused.status_code == 422 and "line 1" in refused.json()["error"]["message"]


async def test_concurrent_sets_each_get_their_own_version_or_a_conflict(world: World) -> None:
    """Ten administrators' saves at once: every answer is a new version or a 409 to retry,
    never a 500, and the versions are 1..n without a gap or a repeat."""
    import asyncio

    texts = [f'@id("p{n}")\n{PERMIT_ALL}' for n in range(10)]
    answers = await asyncio.gather(
        *(world.call("alice", "PUT", _a(world), json={"policies": t}) for t in texts)
    )
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    saved = sorted(a.json()["version"] for a in answers if a.status_code == 200)
    assert saved == list(range(1, len(saved) + 1))
    listed = await world.call("alice", "GET", _a(world, "/versions"), params={"limit": 200})
    assert [v["version"] for v in listed.json()["items"]] == saved[::-1]
