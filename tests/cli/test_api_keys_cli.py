"""``ostiary service-accounts`` and ``ostiary api-keys`` in process (typer's CliRunner) on a
migrated SQLite data directory: what each prints, --json shapes, the key shown once and
working, rotation and revocation, audit with the organization, and refusals (exit 1; a JSON
error with the stable code under --json)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from ostiary import cli
from ostiary.config import load_settings

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
    for email in ("ann@example.com", "bob@example.com", "eve@example.com"):
        assert _run(values, "users", "create", "--email", email).exit_code == 0
    org = _run(values, "orgs", "create", "--name", "Keyed", "--owner", "ann@example.com")
    assert org.exit_code == 0, org.output
    added = _run(
        values, "orgs", "members", "add", "keyed", "--email", "bob@example.com", "--role", "member"
    )
    assert added.exit_code == 0, added.output
    yield values
    os.environ.update(saved)


def _run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), env=env)


def _json(env: dict[str, str], *args: str) -> Any:
    result = _run(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _verify(env: dict[str, str], key: str) -> Any:
    from ostiary.web.runtime import Runtime

    async def check() -> Any:
        settings = load_settings(data_dir=env["OSTIARY_DATA_DIR"], secret_key=KEY)
        rt = Runtime(settings)
        try:
            async with rt.unit() as unit:
                return await unit.api_keys.verify(key)
        finally:
            await rt.close()

    return asyncio.run(check())


def test_service_account_lifecycle_and_its_keys(env: dict[str, str]) -> None:
    account = _json(
        env, "service-accounts", "create", "keyed", "--name", "gateway", "--role", "member"
    )
    assert account["name"] == "gateway" and account["disabled"] is False
    plain = _run(env, "service-accounts", "create", "keyed", "--name", "plain")
    assert plain.exit_code == 0 and len(plain.stdout.strip()) == 36  # prints the id
    listed = _json(env, "service-accounts", "list", "keyed")
    assert [a["name"] for a in listed["items"]] == ["gateway", "plain"]
    created = _json(
        env,
        "api-keys",
        "create",
        "--service-account",
        account["id"],
        "--name",
        "gw",
        "--permission",
        "models:invoke",
        "--model",
        "gpt-x",
        "--allow-ip",
        "10.0.0.0/8",
        "--expires-in-days",
        "30",
    )
    assert created["key"].startswith("ost_sk_" + created["id"] + "_")
    assert created["owner"] == {"type": "service_account", "id": account["id"]}
    assert created["permissions"] == ["models:invoke"] and created["models"] == ["gpt-x"]
    assert created["expires_at"] is not None
    assert _verify(env, created["key"]).valid
    listing = _json(env, "api-keys", "list", "keyed")
    assert created["key"] not in json.dumps(listing)  # shown once, never listed
    assert [k["id"] for k in listing["items"]] == [created["id"]]
    disabled = _json(env, "service-accounts", "disable", account["id"])
    assert disabled["disabled"] is True
    assert not _verify(env, created["key"]).valid
    assert _json(env, "service-accounts", "disable", account["id"], "--enable")["disabled"] is False
    assert _verify(env, created["key"]).valid
    deleted = _json(env, "service-accounts", "delete", account["id"])
    assert deleted == {"deleted": account["id"], "organization_id": account["organization_id"]}
    assert not _verify(env, created["key"]).valid
    gone = _run(env, "service-accounts", "delete", account["id"], "--json")
    assert gone.exit_code == 1 and json.loads(gone.stdout)["error"] == "not_found"


def test_member_keys_rotate_and_revoke(env: dict[str, str]) -> None:
    created = _json(env, "api-keys", "create", "--org", "keyed", "--user", "bob@example.com")
    assert created["owner"]["type"] == "user" and created["permissions"] is None
    human = _run(env, "api-keys", "create", "--org", "keyed", "--user", "bob@example.com")
    assert human.exit_code == 0 and "shown once" in human.stdout
    rotated = _json(env, "api-keys", "rotate", created["id"], "--overlap-seconds", "0")
    assert rotated["id"] == created["id"] and rotated["key"] != created["key"]
    assert not _verify(env, created["key"]).valid
    assert _verify(env, rotated["key"]).valid
    overlapping = _json(env, "api-keys", "rotate", created["id"])
    assert overlapping["rotation_overlap_until"] is not None
    assert _verify(env, rotated["key"]).valid and _verify(env, overlapping["key"]).valid
    assert _json(env, "api-keys", "revoke", created["id"])["revoked"] == created["id"]
    assert not _verify(env, overlapping["key"]).valid
    again = _run(env, "api-keys", "revoke", created["id"], "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["error"] == "conflict"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--org", "keyed", "--user", "eve@example.com"), "not_a_member"),
        (
            ("--org", "keyed", "--user", "bob@example.com", "--permission", "org:manage"),
            "invalid_permission",
        ),
        (("--org", "keyed", "--user", "bob@example.com", "--allow-ip", "10.0.0.1/24"), "invalid"),
        (("--org", "nowhere", "--user", "bob@example.com"), "not_found"),
        (("--service-account", "00000000-0000-0000-0000-000000000000"), "not_found"),
    ],
)
def test_refusals_are_one_json_error(env: dict[str, str], args: tuple[str, ...], code: str) -> None:
    result = _run(env, "api-keys", "create", *args, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["error"] == code


def test_host_bits_are_explained_and_owner_options_are_exclusive(env: dict[str, str]) -> None:
    result = _run(
        env,
        "api-keys",
        "create",
        "--org",
        "keyed",
        "--user",
        "bob@example.com",
        "--allow-ip",
        "10.0.0.1/24",
    )
    assert result.exit_code == 1
    assert "did you mean 10.0.0.0/24?" in result.stderr
    both = _run(env, "api-keys", "create", "--service-account", "x", "--org", "keyed")
    assert both.exit_code == 2 and "--service-account" in both.stderr
    neither = _run(env, "api-keys", "create")
    assert neither.exit_code == 2
