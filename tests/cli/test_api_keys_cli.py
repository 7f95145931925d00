"""``ostiary service-accounts`` and ``ostiary api-keys`` in process (typer's CliRunner) on a
migrated SQLite data directory: what each prints, --json shapes, the key shown once and
working, rotation and revocation, audit with the organization, and refusals (exit 1; a JSON
error with the stable code under --json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli._support import (
    add_member,
    create_org,
    create_users,
    migrated_data_dir,
    on_runtime,
    run,
    run_json,
)

if TYPE_CHECKING:
    from ostiary.web.runtime import Runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with migrated_data_dir(tmp_path_factory) as values:
        create_users(values, "ann@example.com", "bob@example.com", "eve@example.com")
        create_org(values, "Keyed", owner="ann@example.com")
        add_member(values, "keyed", "bob@example.com", role="member")
        yield values


def _verify(env: dict[str, str], key: str) -> Any:
    async def check(rt: Runtime) -> Any:
        async with rt.unit() as unit:
            return await unit.api_keys.verify(key)

    return on_runtime(env, check)


def test_service_account_lifecycle_and_its_keys(env: dict[str, str]) -> None:
    account = run_json(
        env, "service-accounts", "create", "keyed", "--name", "gateway", "--role", "member"
    )
    assert account["name"] == "gateway" and account["disabled"] is False
    plain = run(env, "service-accounts", "create", "keyed", "--name", "plain")
    assert plain.exit_code == 0 and len(plain.stdout.strip()) == 36  # prints the id
    listed = run_json(env, "service-accounts", "list", "keyed")
    assert [a["name"] for a in listed["items"]] == ["gateway", "plain"]
    created = run_json(
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
    listing = run_json(env, "api-keys", "list", "keyed")
    assert created["key"] not in json.dumps(listing)  # shown once, never listed
    assert [k["id"] for k in listing["items"]] == [created["id"]]
    disabled = run_json(env, "service-accounts", "disable", account["id"])
    assert disabled["disabled"] is True
    assert not _verify(env, created["key"]).valid
    assert (
        run_json(env, "service-accounts", "disable", account["id"], "--enable")["disabled"] is False
    )
    assert _verify(env, created["key"]).valid
    deleted = run_json(env, "service-accounts", "delete", account["id"])
    assert deleted == {"deleted": account["id"], "organization_id": account["organization_id"]}
    assert not _verify(env, created["key"]).valid
    gone = run(env, "service-accounts", "delete", account["id"], "--json")
    assert gone.exit_code == 1 and json.loads(gone.stdout)["error"] == "not_found"


def test_member_keys_rotate_and_revoke(env: dict[str, str]) -> None:
    created = run_json(env, "api-keys", "create", "--org", "keyed", "--user", "bob@example.com")
    assert created["owner"]["type"] == "user" and created["permissions"] is None
    human = run(env, "api-keys", "create", "--org", "keyed", "--user", "bob@example.com")
    assert human.exit_code == 0 and "shown once" in human.stdout
    rotated = run_json(env, "api-keys", "rotate", created["id"], "--overlap-seconds", "0")
    assert rotated["id"] == created["id"] and rotated["key"] != created["key"]
    assert not _verify(env, created["key"]).valid
    assert _verify(env, rotated["key"]).valid
    overlapping = run_json(env, "api-keys", "rotate", created["id"])
    assert overlapping["rotation_overlap_until"] is not None
    assert _verify(env, rotated["key"]).valid and _verify(env, overlapping["key"]).valid
    assert run_json(env, "api-keys", "revoke", created["id"])["revoked"] == created["id"]
    assert not _verify(env, overlapping["key"]).valid
    again = run(env, "api-keys", "revoke", created["id"], "--json")
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
    result = run(env, "api-keys", "create", *args, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["error"] == code


def test_host_bits_are_explained_and_owner_options_are_exclusive(env: dict[str, str]) -> None:
    result = run(
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
    both = run(env, "api-keys", "create", "--service-account", "x", "--org", "keyed")
    assert both.exit_code == 2 and "--service-account" in both.stderr
    neither = run(env, "api-keys", "create")
    assert neither.exit_code == 2
