"""``ostiary models`` and ``ostiary policies`` in process (typer's CliRunner) on a migrated
SQLite data directory, and the AuthZEN interop "Todo" scenario replayed end to end: users,
roles, schema and policies set through the CLI, every expected decision asked over HTTP of the
decision API (tests/cli/authzen_todo/README.md says where the data comes from)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ostiary import cli

KEY = "p" * 43
TODO = Path(__file__).with_name("authzen_todo")
PEP = "pep@the-citadel.com"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("OSTIARY_")}
    for name in saved:
        del os.environ[name]
    values = {
        "OSTIARY_DATA_DIR": str(tmp_path_factory.mktemp("cli") / "data"),
        "OSTIARY_SECRET_KEY": KEY,
        "OSTIARY_ISSUER": "http://testserver",
    }
    assert _run(values, "migrate").exit_code == 0
    yield values
    os.environ.update(saved)


def _run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), env=env)


def _json(env: dict[str, str], *args: str) -> Any:
    result = _run(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_models_create_list_and_refusals(env: dict[str, str]) -> None:
    made = _json(
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
    listed = _json(env, "models", "list")
    assert [m["id"] for m in listed["items"]] == ["gpt-large"]
    again = _run(env, "models", "create", "--id", "gpt-large", "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["error"] == "conflict"
    bad = _run(env, "models", "create", "--id", "x", "--attr", "1bad=2", "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"] == "invalid"
    nowhere = _run(env, "models", "list", "--org", "no-such-org", "--json")
    assert nowhere.exit_code == 1


def test_policies_set_show_rollback_and_refusal(env: dict[str, str], tmp_path: Path) -> None:
    _run(env, "users", "create", "--email", "ops@example.com")
    _json(env, "orgs", "create", "--name", "Policy Org", "--owner", "ops@example.com")
    first = _write(tmp_path, "a.cedar", "permit(principal, action, resource);\n")
    second = _write(tmp_path, "b.cedar", "forbid(principal, action, resource is model);\n")
    assert _json(env, "policies", "set", "policy-org", "--file", first)["version"] == 1
    assert _json(env, "policies", "set", "policy-org", "--file", second)["version"] == 2
    shown = _json(env, "policies", "show", "policy-org")
    assert shown["version"] == 2 and "forbid" in shown["policies"]
    rolled = _json(env, "policies", "rollback", "policy-org", "--version", "1")
    assert rolled["version"] == 3 and rolled["note"] == "rollback to v1"
    versions = _json(env, "policies", "show", "policy-org", "--versions")
    assert [v["version"] for v in versions["items"]] == [3, 2, 1]
    bad = _write(tmp_path, "bad.cedar", "permit(principal, action, resource);\npermit(\n")
    refused = _run(env, "policies", "set", "policy-org", "--file", bad, "--json")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)
    assert error["error"] == "invalid_policy" and error["message"].startswith("line 2")
    plain = _run(env, "policies", "set", "policy-org", "--file", bad)
    assert plain.exit_code == 1 and "line 2" in plain.stderr
    assert _json(env, "policies", "show", "policy-org")["version"] == 3
    missing = _run(env, "policies", "rollback", "policy-org", "--version", "42", "--json")
    assert json.loads(missing.stdout)["error"] == "not_found"
    deployment = _json(env, "policies", "set", "*", "--file", first)
    assert deployment["organization_id"] is None
    # deployment-wide policies apply in every organization: empty them again
    empty = _write(tmp_path, "empty.cedar", "// nothing\n")
    assert _json(env, "policies", "set", "*", "--file", empty)["version"] == 2


def _mint(settings: Any, user_email: str) -> str:
    from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter
    from ostiary.web.runtime import Runtime

    async def mint() -> str:
        rt = Runtime(settings)
        try:
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
        finally:
            await rt.close()

    return asyncio.run(mint())


def test_authzen_todo_interop(env: dict[str, str], tmp_path: Path) -> None:
    data = json.loads((TODO / "decisions.json").read_text())
    assert len(data["cases"]) == 40
    _run(env, "users", "create", "--email", PEP)
    for email in data["roles"]:
        assert _run(env, "users", "create", "--email", email).exit_code == 0
    _json(env, "orgs", "create", "--name", "Citadel", "--owner", PEP)
    for role in ("editor", "viewer", "evil_genius"):
        _json(env, "roles", "create", "citadel", "--name", role)
    for email, roles in data["roles"].items():
        args = [a for role in roles for a in ("--role", role)]
        _json(env, "orgs", "members", "add", "citadel", "--email", email, *args)
    policies, schema = str(TODO / "todo.cedar"), str(TODO / "todo.cedarschema")
    # without the schema extension the Todo actions are unknown: refused with the line
    refused = _run(env, "policies", "set", "citadel", "--file", policies, "--json")
    assert json.loads(refused.stdout)["error"] == "invalid_policy"
    saved = _json(env, "policies", "set", "citadel", "--file", policies, "--schema", schema)
    assert saved["version"] == 1

    from starlette.testclient import TestClient

    from ostiary.config import load_settings
    from ostiary.web.app import create_app

    saved_env = dict(os.environ)
    os.environ.update(env)
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    token = _mint(settings, PEP)
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
    report = _json(env, "policies", "dry-run", "citadel", "--file", path, "--schema", schema)
    assert report["replayed"] == 80
    changed = {(c["action"], c["resource"]["id"]) for c in report["changes"]}
    assert changed == {
        ("can_update_todo", "7240d0db-8ff0-41ec-98b2-34a096273b92"),
        ("can_update_todo", "7240d0db-8ff0-41ec-98b2-34a096273b91"),
    }
    assert all(c["was"] and not c["would_be"] for c in report["changes"])
    assert report["changed"] == 4  # each of the two, asked singly and in the batch
