"""``ostiary orgs``, ``roles`` and ``groups`` in process (typer's CliRunner) on a migrated
SQLite data directory: what each prints, --json shapes, and refusals (one line, exit 1; a JSON
error with the stable code under --json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli._support import create_users, migrated_data_dir, on_runtime, run, run_json


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with migrated_data_dir(tmp_path_factory) as values:
        create_users(values, "ann@example.com", "bob@example.com", "cy@example.com")
        yield values


def _refused(result: Any) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_orgs_create_list_show(env: dict[str, str]) -> None:
    org = run_json(env, "orgs", "create", "--name", "Listed Org", "--owner", "ann@example.com")
    assert org["slug"] == "listed-org"
    again = run_json(env, "orgs", "create", "--name", "Listed Org")
    assert again["slug"] == "listed-org-2"
    listed = run_json(env, "orgs", "list")
    assert {org["id"], again["id"]} <= {o["id"] for o in listed["items"]}
    assert run_json(env, "orgs", "show", "listed-org") == org
    assert run_json(env, "orgs", "show", org["id"]) == org
    text = run(env, "orgs", "show", "listed-org")
    assert text.exit_code == 0 and "listed-org" in text.stdout
    assert "not_found" in _refused(run(env, "orgs", "show", "no-such-org"))
    err = run(env, "orgs", "show", "no-such-org", "--json")
    assert err.exit_code == 1
    assert json.loads(err.stdout) == {"error": "not_found", "message": "no such organization"}


def test_projects(env: dict[str, str]) -> None:
    run_json(env, "orgs", "create", "--name", "Proj Org", "--slug", "proj-org")
    project = run_json(env, "orgs", "projects", "create", "proj-org", "--name", "Chat Bot")
    assert project["slug"] == "chat-bot"
    listed = run_json(env, "orgs", "projects", "list", "proj-org")
    assert [p["id"] for p in listed["items"]] == [project["id"]]
    assert "conflict" in _refused(
        run(env, "orgs", "projects", "create", "proj-org", "--name", "x", "--slug", "chat-bot")
    )


def test_members_roles_groups_and_effective_permissions(env: dict[str, str]) -> None:
    org = "team-org"
    run_json(env, "orgs", "create", "--name", "Team", "--slug", org, "--owner", "ann@example.com")
    added = run_json(
        env, "orgs", "members", "add", org, "--email", "bob@example.com", "--role", "reader"
    )
    assert [r["role"] for r in added["roles"]] == ["reader"]
    tuner = run_json(
        env,
        "roles",
        "create",
        org,
        "--name",
        "tuner",
        "--permission",
        "models:fine-tune",
        "--include",
        "member",
    )
    assert tuner["permissions"] == ["models:fine-tune"] and tuner["includes"] == ["member"]
    empty = run_json(env, "roles", "create", org, "--name", "marker")
    assert empty["permissions"] == []
    group = run_json(env, "groups", "create", org, "--name", "eng", "--role", "tuner")
    assert [r["role"] for r in group["roles"]] == ["tuner"]
    after = run_json(env, "groups", "add-member", org, "eng", "--email", "bob@example.com")
    assert [m["email"] for m in after["members"]] == ["bob@example.com"]
    members = {m["email"]: m for m in run_json(env, "orgs", "members", "list", org)["items"]}
    assert members["ann@example.com"]["effective_permissions"] == ["*"]
    bob = members["bob@example.com"]
    assert bob["groups"] == ["eng"]
    assert set(bob["effective_permissions"]) == {
        "models:fine-tune",
        "models:invoke",
        "models:read",
        "keys:create",
        "keys:read",
        "members:read",
    }
    # A role edit reaches the group's member.
    run_json(env, "roles", "update", org, "tuner", "--permission", "audit:read")
    members = {m["email"]: m for m in run_json(env, "orgs", "members", "list", org)["items"]}
    assert "audit:read" in members["bob@example.com"]["effective_permissions"]
    assert "models:fine-tune" not in members["bob@example.com"]["effective_permissions"]
    # set-roles replaces; remove-member from group; roles list shows built-ins first.
    set_to = run_json(
        env, "orgs", "members", "set-roles", org, "--email", "bob@example.com", "--role", "admin"
    )
    assert [r["role"] for r in set_to["roles"]] == ["admin"]
    run_json(env, "groups", "remove-member", org, "eng", "--email", "bob@example.com")
    listed = run_json(env, "roles", "list", org)["items"]
    assert [r["name"] for r in listed][:4] == ["owner", "admin", "member", "reader"]
    groups = run_json(env, "groups", "list", org)["items"]
    assert groups[0]["members"] == []
    # Deleting a role removes its assignments.
    run_json(
        env,
        "orgs",
        "members",
        "set-roles",
        org,
        "--email",
        "bob@example.com",
        "--role",
        "marker",
        "--role",
        "reader",
    )
    run_json(env, "roles", "delete", org, "marker")
    members = {m["email"]: m for m in run_json(env, "orgs", "members", "list", org)["items"]}
    assert [r["role"] for r in members["bob@example.com"]["roles"]] == ["reader"]
    # Removing a member; never the last owner.
    run_json(env, "orgs", "members", "remove", org, "--email", "bob@example.com")
    assert "last_owner" in _refused(
        run(env, "orgs", "members", "remove", org, "--email", "ann@example.com")
    )
    err = run(env, "orgs", "members", "remove", org, "--email", "ann@example.com", "--json")
    assert err.exit_code == 1 and json.loads(err.stdout)["error"] == "last_owner"


def test_refusals_name_the_problem(env: dict[str, str]) -> None:
    org = "refusal-org"
    run_json(env, "orgs", "create", "--name", "Refusals", "--slug", org)
    bad = _refused(run(env, "roles", "create", org, "--name", "x", "--permission", "models:invok"))
    assert "did you mean models:invoke" in bad and "invalid_permission" in bad
    run_json(env, "roles", "create", org, "--name", "a")
    run_json(env, "roles", "create", org, "--name", "b", "--include", "a")
    cycle = run(env, "roles", "update", org, "a", "--include", "b", "--json")
    assert cycle.exit_code == 1
    assert json.loads(cycle.stdout) == {
        "error": "role_cycle",
        "message": "role includes would form a cycle: a -> b -> a",
    }
    roles = {r["name"]: r for r in run_json(env, "roles", "list", org)["items"]}
    assert roles["a"]["includes"] == []  # nothing saved
    assert "not_found" in _refused(
        run(env, "orgs", "members", "add", org, "--email", "nobody@example.com", "--role", "reader")
    )
    run_json(env, "groups", "create", org, "--name", "g")
    outsider = run(env, "groups", "add-member", org, "g", "--email", "cy@example.com")
    assert "not_a_member" in _refused(outsider)
    missing_role = run(env, "orgs", "members", "add", org, "--email", "cy@example.com")
    assert missing_role.exit_code != 0


def test_a_refused_command_leaves_nothing_and_is_audited(env: dict[str, str]) -> None:
    from sqlalchemy import select

    from ostiary.storage.sqla.tables import audit_events
    from ostiary.web.runtime import Runtime

    org = "atomic-org"
    run_json(env, "orgs", "create", "--name", "Atomic", "--slug", org)
    # The user is added, then the unknown role is refused: the membership is not kept.
    refused = run(env, "orgs", "members", "add", org, "--email", "cy@example.com", "--role", "nope")
    assert "not_found" in _refused(refused)
    assert run_json(env, "orgs", "members", "list", org)["items"] == []
    outsider = run(env, "groups", "add-member", org, "nobody", "--email", "cy@example.com")
    assert "not_found" in _refused(outsider)

    async def failures(rt: Runtime) -> list[tuple[str, str | None]]:
        async with rt.unit() as unit:
            rows = await unit.conn.execute(
                select(audit_events.c.action, audit_events.c.details).where(
                    audit_events.c.outcome == "failure"
                )
            )
            return [(r[0], r[1].get("code")) for r in rows]

    audited = on_runtime(env, failures)
    assert ("cli.members_add", "not_found") in audited
    assert ("cli.groups_add_member", "not_found") in audited


def test_update_and_delete_organizations_projects_and_groups(env: dict[str, str]) -> None:
    org = run_json(env, "orgs", "create", "--name", "Doomed Org", "--owner", "ann@example.com")
    renamed = run_json(env, "orgs", "update", org["slug"], "--name", "Renamed", "--slug", "renamed")
    assert (renamed["name"], renamed["slug"], renamed["id"]) == ("Renamed", "renamed", org["id"])
    _refused(run(env, "orgs", "update", "renamed", "--slug", "Bad Slug"))
    project = run_json(env, "orgs", "projects", "create", "renamed", "--name", "Proj")
    moved = run_json(env, "orgs", "projects", "update", "renamed", "proj", "--slug", "proj-2")
    assert moved["slug"] == "proj-2" and moved["id"] == project["id"]
    assert run_json(env, "orgs", "projects", "delete", "renamed", "proj-2")["deleted"] is True
    assert run_json(env, "orgs", "projects", "list", "renamed")["items"] == []
    run_json(env, "groups", "create", "renamed", "--name", "ops", "--role", "reader")
    assert run_json(env, "groups", "delete", "renamed", "ops")["deleted"] is True
    assert run_json(env, "groups", "list", "renamed")["items"] == []
    refused = run(env, "orgs", "delete", "renamed")
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert run_json(env, "orgs", "delete", "renamed", "--yes")["deleted"] is True
    gone = run(env, "orgs", "show", "renamed", "--json")
    assert gone.exit_code == 1 and json.loads(gone.stdout)["error"] == "not_found"


def test_the_plan_is_set_by_the_operator(env: dict[str, str]) -> None:
    org = run_json(env, "orgs", "create", "--name", "Planned", "--plan", "enterprise")
    assert org["plan"] == "enterprise"
    assert run_json(env, "orgs", "show", "planned")["plan"] == "enterprise"
    assert run_json(env, "orgs", "update", "planned", "--plan", "pro.2026")["plan"] == "pro.2026"
    for bad in ("", "two words", "-leading", "x" * 65, "ünicode"):
        refused = _refused(run(env, "orgs", "update", "planned", "--plan", bad))
        assert "plan must be" in refused
    assert (
        run_json(env, "orgs", "show", "planned")["plan"] == "pro.2026"
    )  # refusals changed nothing
    assert run_json(env, "orgs", "update", "planned", "--plan", "none")["plan"] is None
    human = run(env, "orgs", "update", "planned", "--plan", "free")
    assert human.exit_code == 0 and "plan free" in human.stdout
    shown = run(env, "orgs", "show", "planned")
    assert shown.exit_code == 0 and "plan: free; require-acr: none" in shown.stdout
