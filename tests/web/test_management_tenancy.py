"""The tenancy sweep of the management API, generated from the OpenAPI document.

Every operation under ``/api/v1/orgs/{org}/...`` (every method), with its path parameters
filled with organization B's real ids (its project, custom role, group and owner) and a
schema-valid body, is sent by someone who may not act in B: the owner of organization A, and
a user who belongs to no organization. Each must get 404 (not 403: an organization's existence
does not leak), and B must be exactly as it was afterwards. A new endpoint is swept without
editing this file; the sweep asserts it covered at least :data:`MIN_OPERATIONS` operations.

The credential kind is a parameter, one entry of :data:`CREDENTIALS` per kind: an access
token, a real API key of A's owner (all of the owner's permissions), and a real API key of a
service account of A holding A's ``admin`` role.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.web.management_helpers import World, build_world, mint

MIN_OPERATIONS = 52
_METHODS = ("get", "post", "put", "patch", "delete")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def example(document: dict[str, Any], schema: dict[str, Any], name: str = "") -> Any:
    """A minimal instance valid for ``schema`` (required fields only; "member" satisfies every
    string pattern of the API but the e-mail's)."""
    schema = _resolve(document, schema)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return example(document, options[0], name)
    kind = schema.get("type")
    if kind == "object":
        return {
            key: example(document, schema["properties"][key], key)
            for key in schema.get("required", [])
        }
    if kind == "array":
        count = schema.get("minItems", 0)
        return [example(document, schema["items"], name) for _ in range(count)]
    if kind == "string":
        if schema.get("examples"):  # a text with a grammar of its own (Cedar policies)
            return schema["examples"][0]
        return "erin@example.com" if name == "email" else "member"
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    raise AssertionError(f"no example for {schema}")


def org_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/orgs/{org}")
        for method, operation in item.items()
        if method in _METHODS
    ]


Factory = Callable[[World, str, pytest.MonkeyPatch], Awaitable[str]]


async def _access_token(world: World, who: str, _patch: pytest.MonkeyPatch) -> str:
    return await mint(world.app, world.users[who])


async def _user_api_key(world: World, who: str, _patch: pytest.MonkeyPatch) -> str:
    """A key of ``who`` in their organization (A), with all of their permissions."""
    async with world.app.state.runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            world.orgs["A"]["id"], ("user", world.users[who]), name="sweep", actor=None
        )
    return issued.secret


async def _service_account_key(world: World, _who: str, _patch: pytest.MonkeyPatch) -> str:
    """A key of a service account of A that holds A's admin role."""
    org = world.orgs["A"]["id"]
    async with world.app.state.runtime.unit() as unit:
        account = await unit.api_keys.create_service_account(
            org, f"sweeper-{secrets.token_hex(4)}", roles=["admin"], actor=None
        )
        issued = await unit.api_keys.create_key(
            org, ("service_account", account.id), name="sweep", actor=None
        )
    return issued.secret


# Credential kinds of an outsider to organization B: name -> factory of a bearer credential.
CREDENTIALS: dict[str, Factory] = {
    "access_token": _access_token,
    "api_key": _user_api_key,
    "service_account_key": _service_account_key,
}
# (kind, who): the owner of A with every kind; a user of no organization with a token.
CASES = [(kind, "alice") for kind in CREDENTIALS] + [("access_token", "erin")]


async def _b_ids(world: World) -> dict[str, str]:
    """Organization B with a project, a custom role, a group, a service account, an API key,
    an invitation, a catalog entry and a policy version, made by its owner."""
    b = world.orgs["B"]["id"]
    made = {}
    for kind, body in (
        ("projects", {"name": "B project"}),
        ("roles", {"name": "B role", "permissions": ["models:read"]}),
        ("groups", {"name": "B group", "roles": ["reader"]}),
        ("service-accounts", {"name": "B robot", "roles": ["reader"]}),
        ("keys", {"name": "B key"}),
        ("invitations", {"email": "zed@example.com", "roles": ["reader"], "mail": False}),
        ("models", {"id": "b-model", "attributes": {"tier": "gold"}}),
    ):
        response = await world.call("bob", "POST", f"/api/v1/orgs/{b}/{kind}", json=body)
        assert response.status_code == 201, response.text
        made[kind] = response.json()["id"]
    response = await world.call(
        "bob", "POST", f"/api/v1/orgs/{b}/groups/{made['groups']}/members/{world.users['bob']}"
    )
    assert response.status_code == 204, response.text
    policies = {"policies": "permit (principal, action, resource);"}
    response = await world.call("bob", "PUT", f"/api/v1/orgs/{b}/policies", json=policies)
    assert response.status_code == 200, response.text
    return {
        "org": b,
        "project": made["projects"],
        "role": made["roles"],
        "group": made["groups"],
        "user_id": world.users["bob"],
        "account": made["service-accounts"],
        "key": made["keys"],
        "invitation": made["invitations"],
        "model": made["models"],
        "version": str(response.json()["version"]),
    }


async def _snapshot(world: World, org: str) -> dict[str, Any]:
    state = {}
    for part in (
        "",
        "/projects",
        "/members",
        "/roles",
        "/groups",
        "/service-accounts",
        "/keys",
        "/invitations",
        "/policies",
        "/policies/versions",
    ):
        response = await world.call("bob", "GET", f"/api/v1/orgs/{org}{part}")
        assert response.status_code == 200, response.text
        state[part] = response.json()
    return state


@pytest.mark.parametrize(("kind", "who"), CASES)
async def test_no_operation_reaches_another_organization(
    app: Any, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, kind: str, who: str
) -> None:
    world = await build_world(app, client)
    ids = await _b_ids(world)
    before = await _snapshot(world, ids["org"])
    document = (await client.get("/openapi.json")).json()
    operations = org_operations(document)
    headers = {"Authorization": f"Bearer {await CREDENTIALS[kind](world, who, monkeypatch)}"}
    own = await client.get(f"/api/v1/orgs/{world.orgs['A']['id']}/members", headers=headers)
    if who == "alice":  # the credential works where it belongs
        assert own.status_code == 200, own.text
    swept = []
    for method, path, operation in operations:
        url = path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", ids[parameter["name"]])
        assert "{" not in url, f"unfilled path parameter in {method} {path}"
        body = None
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            body = example(document, content["application/json"]["schema"])
        response = await client.request(method, url, headers=headers, json=body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "not_found", (method, path)
        swept.append(f"{method} {path}")
    assert len(swept) >= MIN_OPERATIONS, swept
    assert await _snapshot(world, ids["org"]) == before


async def test_the_sweep_examples_are_valid_requests(app: Any, client: httpx.AsyncClient) -> None:
    """Guards the sweep: inside their own organization, its bodies pass validation (a 422
    there would mean the 404s above were never about tenancy)."""
    world = await build_world(app, client)
    ids = await _b_ids(world)
    document = (await client.get("/openapi.json")).json()
    for method, path, operation in org_operations(document):
        if method in ("DELETE",) or path.endswith("/leave"):
            continue  # would remove what later operations need
        url = path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", ids[parameter["name"]])
        content = operation.get("requestBody", {}).get("content", {})
        body = (
            example(document, content["application/json"]["schema"])
            if "application/json" in content
            else None
        )
        response = await world.call("bob", method, url, json=body)
        assert response.status_code != 422, (method, path, response.text)
