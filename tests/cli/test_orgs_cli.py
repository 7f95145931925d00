"""``ostiary orgs``, ``roles`` and ``groups`` in process (typer's CliRunner) on a migrated
SQLite data directory: what each prints, --json shapes, and refusals (one line, exit 1; a JSON
error with the stable code under --json)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from ostiary import cli

KEY = "q" * 43


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("OSTIARY_")}
    for name in saved:
        del os.environ[name]
    values = {
        "OSTIARY_DATA_DIR": str(tmp_path_factory.mktemp("cli") / "data"),
        "OSTIARY_SECRET_KEY": KEY,
    }
    assert _run(values, "migrate").exit_code == 0
    for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
        assert _run(values, "users", "create", "--email", email).exit_code == 0
    yield values
    os.environ.update(saved)


def _run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), env=env)


def _json(env: dict[str, str], *args: str) -> Any:
    result = _run(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _refused(result: Any) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_orgs_create_list_show(env: dict[str, str]) -> None:
    org = _json(env, "orgs", "create", "--name", "Listed Org", "--owner", "ann@example.com")
    assert org["slug"] == "listed-org"
    again = _json(env, "orgs", "create", "--name", "Listed Org")
    assert again["slug"] == "listed-org-2"
    listed = _json(env, "orgs", "list")
    assert {org["id"], again["id"]} <= {o["id"] for o in listed["items"]}
    assert _json(env, "orgs", "show", "listed-org") == org
    assert _json(env, "orgs", "show", org["id"]) == org
    text = _run(env, "orgs", "show", "listed-org")
    assert text.exit_code == 0 and "listed-org" in text.stdout
    assert "not_found" in _refused(_run(env, "orgs", "show", "no-such-org"))
    err = _run(env, "orgs", "show", "no-such-org", "--json")
    assert err.exit_code == 1
    assert json.loads(err.stdout) == {"error": "not_found", "message": "no such organization"}


def test_projects(env: dict[str, str]) -> None:
    _json(env, "orgs", "create", "--name", "Proj Org", "--slug", "proj-org")
    project = _json(env, "orgs", "projects", "create", "proj-org", "--name", "Chat Bot")
    assert project["slug"] == "chat-bot"
    listed = _json(env, "orgs", "projects", "list", "proj-org")
    assert [p["id"] for p in listed["items"]] == [project["id"]]
    assert "conflict" in _refused(
        _run(env, "orgs", "projects", "create", "proj-org", "--name", "x", "--slug", "chat-bot")
    )


def test_members_roles_groups_and_effective_permissions(env: dict[str, str]) -> None:
    org = "team-org"
    _json(env, "orgs", "create", "--name", "Team", "--slug", org, "--owner", "ann@example.com")
    added = _json(
        env, "orgs", "members", "add", org, "--email", "bob@example.com", "--role", "reader"
    )
    assert [r["role"] for r in added["roles"]] == ["reader"]
    tuner = _json(
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
    empty = _json(env, "roles", "create", org, "--name", "marker")
    assert empty["permissions"] == []
    group = _json(env, "groups", "create", org, "--name", "eng", "--role", "tuner")
    assert [r["role"] for r in group["roles"]] == ["tuner"]
    after = _json(env, "groups", "add-member", org, "eng", "--email", "bob@example.com")
    assert [m["email"] for m in after["members"]] == ["bob@example.com"]
    members = {m["email"]: m for m in _json(env, "orgs", "members", "list", org)["items"]}
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
    _json(env, "roles", "update", org, "tuner", "--permission", "audit:read")
    members = {m["email"]: m for m in _json(env, "orgs", "members", "list", org)["items"]}
    assert "audit:read" in members["bob@example.com"]["effective_permissions"]
    assert "models:fine-tune" not in members["bob@example.com"]["effective_permissions"]
    # set-roles replaces; remove-member from group; roles list shows built-ins first.
    set_to = _json(
        env, "orgs", "members", "set-roles", org, "--email", "bob@example.com", "--role", "admin"
    )
    assert [r["role"] for r in set_to["roles"]] == ["admin"]
    _json(env, "groups", "remove-member", org, "eng", "--email", "bob@example.com")
    listed = _json(env, "roles", "list", org)["items"]
    assert [r["name"] for r in listed][:4] == ["owner", "admin", "member", "reader"]
    groups = _json(env, "groups", "list", org)["items"]
    assert groups[0]["members"] == []
    # Deleting a role removes its assignments.
    _json(
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
    _json(env, "roles", "delete", org, "marker")
    members = {m["email"]: m for m in _json(env, "orgs", "members", "list", org)["items"]}
    assert [r["role"] for r in members["bob@example.com"]["roles"]] == ["reader"]
    # Removing a member; never the last owner.
    _json(env, "orgs", "members", "remove", org, "--email", "bob@example.com")
    assert "last_owner" in _refused(
        _run(env, "orgs", "members", "remove", org, "--email", "ann@example.com")
    )
    err = _run(env, "orgs", "members", "remove", org, "--email", "ann@example.com", "--json")
    assert err.exit_code == 1 and json.loads(err.stdout)["error"] == "last_owner"


def test_refusals_name_the_problem(env: dict[str, str]) -> None:
    org = "refusal-org"
    _json(env, "orgs", "create", "--name", "Refusals", "--slug", org)
    bad = _refused(_run(env, "roles", "create", org, "--name", "x", "--permission", "models:invok"))
    assert "did you mean models:invoke" in bad and "invalid_permission" in bad
    _json(env, "roles", "create", org, "--name", "a")
    _json(env, "roles", "create", org, "--name", "b", "--include", "a")
    cycle = _run(env, "roles", "update", org, "a", "--include", "b", "--json")
    assert cycle.exit_code == 1
    assert json.loads(cycle.stdout) == {
        "error": "role_cycle",
        "message": "role includes would form a cycle: a -> b -> a",
    }
    roles = {r["name"]: r for r in _json(env, "roles", "list", org)["items"]}
    assert roles["a"]["includes"] == []  # nothing saved
    assert "not_found" in _refused(
        _run(
            env, "orgs", "members", "add", org, "--email", "nobody@example.com", "--role", "reader"
        )
    )
    _json(env, "groups", "create", org, "--name", "g")
    outsider = _run(env, "groups", "add-member", org, "g", "--email", "cy@example.com")
    assert "not_a_member" in _refused(outsider)
    missing_role = _run(env, "orgs", "members", "add", org, "--email", "cy@example.com")
    assert missing_role.exit_code != 0


def test_a_refused_command_leaves_nothing_and_is_audited(env: dict[str, str]) -> None:
    import asyncio

    from sqlalchemy import select

    from ostiary.config import load_settings
    from ostiary.storage.sqla.tables import audit_events
    from ostiary.web.runtime import Runtime

    org = "atomic-org"
    _json(env, "orgs", "create", "--name", "Atomic", "--slug", org)
    # The user is added, then the unknown role is refused: the membership is not kept.
    refused = _run(
        env, "orgs", "members", "add", org, "--email", "cy@example.com", "--role", "nope"
    )
    assert "not_found" in _refused(refused)
    assert _json(env, "orgs", "members", "list", org)["items"] == []
    outsider = _run(env, "groups", "add-member", org, "nobody", "--email", "cy@example.com")
    assert "not_found" in _refused(outsider)

    async def failures() -> list[tuple[str, str | None]]:
        rt = Runtime(load_settings(data_dir=env["OSTIARY_DATA_DIR"], secret_key=KEY))
        try:
            async with rt.unit() as unit:
                rows = await unit.conn.execute(
                    select(audit_events.c.action, audit_events.c.details).where(
                        audit_events.c.outcome == "failure"
                    )
                )
                return [(r[0], r[1].get("code")) for r in rows]
        finally:
            await rt.close()

    audited = asyncio.run(failures())
    assert ("cli.members_add", "not_found") in audited
    assert ("cli.groups_add_member", "not_found") in audited


def test_update_and_delete_organizations_projects_and_groups(env: dict[str, str]) -> None:
    org = _json(env, "orgs", "create", "--name", "Doomed Org", "--owner", "ann@example.com")
    renamed = _json(env, "orgs", "update", org["slug"], "--name", "Renamed", "--slug", "renamed")
    assert (renamed["name"], renamed["slug"], renamed["id"]) == ("Renamed", "renamed", org["id"])
    _refused(_run(env, "orgs", "update", "renamed", "--slug", "Bad Slug"))
    project = _json(env, "orgs", "projects", "create", "renamed", "--name", "Proj")
    moved = _json(env, "orgs", "projects", "update", "renamed", "proj", "--slug", "proj-2")
    assert moved["slug"] == "proj-2" and moved["id"] == project["id"]
    assert _json(env, "orgs", "projects", "delete", "renamed", "proj-2")["deleted"] is True
    assert _json(env, "orgs", "projects", "list", "renamed")["items"] == []
    _json(env, "groups", "create", "renamed", "--name", "ops", "--role", "reader")
    assert _json(env, "groups", "delete", "renamed", "ops")["deleted"] is True
    assert _json(env, "groups", "list", "renamed")["items"] == []
    refused = _run(env, "orgs", "delete", "renamed")
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert _json(env, "orgs", "delete", "renamed", "--yes")["deleted"] is True
    gone = _run(env, "orgs", "show", "renamed", "--json")
    assert gone.exit_code == 1 and json.loads(gone.stdout)["error"] == "not_found"


def test_the_plan_is_set_by_the_operator(env: dict[str, str]) -> None:
    org = _json(env, "orgs", "create", "--name", "Planned", "--plan", "enterprise")
    assert org["plan"] == "enterprise"
    assert _json(env, "orgs", "show", "planned")["plan"] == "enterprise"
    assert _json(env, "orgs", "update", "planned", "--plan", "pro.2026")["plan"] == "pro.2026"
    for bad in ("", "two words", "-leading", "x" * 65, "ünicode"):
        refused = _refused(_run(env, "orgs", "update", "planned", "--plan", bad))
        assert "plan must be" in refused
    assert _json(env, "orgs", "show", "planned")["plan"] == "pro.2026"  # refusals changed nothing
    assert _json(env, "orgs", "update", "planned", "--plan", "none")["plan"] is None
    human = _run(env, "orgs", "update", "planned", "--plan", "free")
    assert human.exit_code == 0 and "plan free" in human.stdout
    shown = _run(env, "orgs", "show", "planned")
    assert shown.exit_code == 0 and "plan: free; require-acr: none" in shown.stdout
