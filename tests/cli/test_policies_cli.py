"""``ostiary models`` and ``ostiary policies`` in process (typer's CliRunner) on a migrated
SQLite data directory, and the AuthZEN interop "Todo" scenario replayed end to end: users,
roles, schema and policies set through the CLI, every expected decision asked over HTTP of the
decision API (tests/cli/authzen_todo/README.md says where the data comes from)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli._support import migrated_data_dir, on_runtime, run, run_json, settings_of

if TYPE_CHECKING:
    from ostiary.web.runtime import Runtime

TODO = Path(__file__).with_name("authzen_todo")
PEP = "pep@the-citadel.com"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with migrated_data_dir(tmp_path_factory, OSTIARY_ISSUER="http://testserver") as values:
        yield values


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_models_create_list_and_refusals(env: dict[str, str]) -> None:
    made = run_json(
        env,
        "models",
        "create",
        "--id",
        "gpt-large",
        "--attr",
        "tier=premium",
        "--attr",
        "context_window=128000",
        "--attr",
        "modalities=text,image",
        "--attr",
        "open=false",
    )
    assert made["organization_id"] is None
    assert made["attributes"] == {
        "tier": "premium",
        "context_window": 128000,
        "modalities": ["text", "image"],
        "open": False,
    }
    listed = run_json(env, "models", "list")
    assert [m["id"] for m in listed["items"]] == ["gpt-large"]
    again = run(env, "models", "create", "--id", "gpt-large", "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["error"] == "conflict"
    bad = run(env, "models", "create", "--id", "x", "--attr", "1bad=2", "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"] == "invalid"
    nowhere = run(env, "models", "list", "--org", "no-such-org", "--json")
    assert nowhere.exit_code == 1


def test_policies_set_show_rollback_and_refusal(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "users", "create", "--email", "ops@example.com")
    run_json(env, "orgs", "create", "--name", "Policy Org", "--owner", "ops@example.com")
    first = _write(tmp_path, "a.cedar", "permit(principal, action, resource);\n")
    second = _write(tmp_path, "b.cedar", "forbid(principal, action, resource is model);\n")
    assert run_json(env, "policies", "set", "policy-org", "--file", first)["version"] == 1
    assert run_json(env, "policies", "set", "policy-org", "--file", second)["version"] == 2
    shown = run_json(env, "policies", "show", "policy-org")
    assert shown["version"] == 2 and "forbid" in shown["policies"]
    rolled = run_json(env, "policies", "rollback", "policy-org", "--version", "1")
    assert rolled["version"] == 3 and rolled["note"] == "rollback to v1"
    versions = run_json(env, "policies", "show", "policy-org", "--versions")
    assert [v["version"] for v in versions["items"]] == [3, 2, 1]
    bad = _write(tmp_path, "bad.cedar", "permit(principal, action, resource);\npermit(\n")
    refused = run(env, "policies", "set", "policy-org", "--file", bad, "--json")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)
    assert error["error"] == "invalid_policy" and error["message"].startswith("line 2")
    plain = run(env, "policies", "set", "policy-org", "--file", bad)
    assert plain.exit_code == 1 and "line 2" in plain.stderr
    assert run_json(env, "policies", "show", "policy-org")["version"] == 3
    missing = run(env, "policies", "rollback", "policy-org", "--version", "42", "--json")
    assert json.loads(missing.stdout)["error"] == "not_found"
    deployment = run_json(env, "policies", "set", "*", "--file", first)
    assert deployment["organization_id"] is None
    # deployment-wide policies apply in every organization: empty them again
    empty = _write(tmp_path, "empty.cedar", "// nothing\n")
    assert run_json(env, "policies", "set", "*", "--file", empty)["version"] == 2


def _mint(env: dict[str, str], user_email: str) -> str:
    from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter

    async def mint(rt: Runtime) -> str:
        async with rt.unit() as unit:
            await unit.keys.ensure_keys(actor="system")
            user = await unit.accounts.get_by_email(user_email)
            minted = await TokenMinter(unit.keys, rt.oauth_policy.issuer).access_token(
                AccessTokenRequest(
                    client_id="todo-pep",
                    subject=user.id,
                    scope="",
                    audience=[rt.oauth_policy.issuer],
                    ttl=timedelta(minutes=10),
                ),
                rt.clock.now(),
            )
            return minted.token

    return on_runtime(env, mint)


def test_authzen_todo_interop(env: dict[str, str], tmp_path: Path) -> None:
    data = json.loads((TODO / "decisions.json").read_text())
    assert len(data["cases"]) == 40
    run(env, "users", "create", "--email", PEP)
    for email in data["roles"]:
        assert run(env, "users", "create", "--email", email).exit_code == 0
    run_json(env, "orgs", "create", "--name", "Citadel", "--owner", PEP)
    for role in ("editor", "viewer", "evil_genius"):
        run_json(env, "roles", "create", "citadel", "--name", role)
    for email, roles in data["roles"].items():
        args = [a for role in roles for a in ("--role", role)]
        run_json(env, "orgs", "members", "add", "citadel", "--email", email, *args)
    policies, schema = str(TODO / "todo.cedar"), str(TODO / "todo.cedarschema")
    # without the schema extension the Todo actions are unknown: refused with the line
    refused = run(env, "policies", "set", "citadel", "--file", policies, "--json")
    assert json.loads(refused.stdout)["error"] == "invalid_policy"
    saved = run_json(env, "policies", "set", "citadel", "--file", policies, "--schema", schema)
    assert saved["version"] == 1

    from starlette.testclient import TestClient

    from ostiary.web.app import create_app

    settings = settings_of(env)
    token = _mint(env, PEP)
    headers = {"Authorization": f"Bearer {token}", "Ostiary-Organization": "citadel"}
    wrong: list[Any] = []
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        for subject, action, kind, resource_id, properties, expected in data["cases"]:
            body = {
                "subject": {"type": "user", "id": subject},
                "action": {"name": action},
                "resource": {"type": kind, "id": resource_id, "properties": properties},
            }
            response = client.post("/access/v1/evaluation", json=body, headers=headers)
            assert response.status_code == 200, response.text
            if response.json()["decision"] is not expected:
                wrong.append((subject, action, resource_id, properties, response.json()))
        # the same cases as one batch
        batch = client.post(
            "/access/v1/evaluations",
            json={
                "evaluations": [
                    {
                        "subject": {"type": "user", "id": s},
                        "action": {"name": a},
                        "resource": {"type": k, "id": r, "properties": p},
                    }
                    for s, a, k, r, p, _ in data["cases"]
                ]
            },
            headers=headers,
        )
    assert not wrong, wrong
    assert [e["decision"] for e in batch.json()["evaluations"]] == [c[5] for c in data["cases"]]

    # dry-run: a candidate without "update-any-todo" changes exactly Rick's updates (he is
    # not an editor, so not even his own todo stays his to update)
    rule = (
        '@id("update-any-todo")\n'
        'permit(principal in Role::"evil_genius", action == Action::"can_update_todo", resource);'
    )
    candidate = (TODO / "todo.cedar").read_text().replace(rule, "")
    assert rule not in candidate
    path = _write(tmp_path, "candidate.cedar", candidate)
    report = run_json(env, "policies", "dry-run", "citadel", "--file", path, "--schema", schema)
    assert report["replayed"] == 80
    changed = {(c["action"], c["resource"]["id"]) for c in report["changes"]}
    assert changed == {
        ("can_update_todo", "7240d0db-8ff0-41ec-98b2-34a096273b92"),
        ("can_update_todo", "7240d0db-8ff0-41ec-98b2-34a096273b91"),
    }
    assert all(c["was"] and not c["would_be"] for c in report["changes"])
    assert report["changed"] == 4  # each of the two, asked singly and in the batch

    # the same 80 decisions, read back for an audit: newest first, the denies alone, pages
    logged = run_json(env, "policies", "decisions", "citadel", "--limit", "1000")["items"]
    assert len(logged) == 80
    assert [d["id"] for d in logged] == sorted((d["id"] for d in logged), reverse=True)
    expected = [c[5] for c in data["cases"]]
    assert [d["decision"] for d in reversed(logged)] == expected + expected
    denies = run_json(env, "policies", "decisions", "citadel", "--denied", "--limit", "1000")
    assert len(denies["items"]) == 2 * expected.count(False)
    assert not any(d["decision"] for d in denies["items"])
    page = run_json(env, "policies", "decisions", "citadel", "--limit", "30")["items"]
    after = run_json(
        env, "policies", "decisions", "citadel", "--before", str(page[-1]["id"]), "--limit", "1000"
    )["items"]
    assert [d["id"] for d in page + after] == [d["id"] for d in logged]
    text = run(env, "policies", "decisions", "citadel", "--limit", "1")
    assert text.exit_code == 0 and text.stdout.startswith("#")
    both = run(env, "policies", "decisions", "citadel", "--denied", "--permitted")
    assert both.exit_code == 2 and "exclude" in both.output
