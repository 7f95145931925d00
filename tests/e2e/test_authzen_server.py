"""The AuthZEN decision API of a real ``ostiary dev`` server (OpenID AuthZEN Authorization API
1.0), driven from the outside: users, organization, roles, catalog and Cedar policies with the
CLI in other processes; the PEP's access token from the authorization code flow with Authlib
(an independent OAuth client); decisions with plain httpx over a real socket. A policy or
catalog change made by the CLI while the server runs is in the very next decision."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import authorize_over_http, callback_params, create_clients

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: never followed


def _cli_json(server: Server, *args: str) -> Any:
    result: subprocess.CompletedProcess[str] = server.cli(*args, "--json")
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def _pep_token(server: Server, email: str) -> str:
    web = create_clients(server, pep=["--redirect-uri", REDIRECT])["pep"]
    with (
        OAuth2Client(
            client_id=web["client_id"],
            client_secret=web["client_secret"],
            redirect_uri=REDIRECT,
            scope="openid",
            code_challenge_method="S256",
            timeout=15.0,
        ) as oauth,
        server.client() as browser,
    ):
        verifier = secrets.token_urlsafe(48)
        url, state = oauth.create_authorization_url(
            f"{server.base_url}/authorize", code_verifier=verifier
        )
        response = authorize_over_http(browser, url, email, STRONG_PASSWORD)
        params = callback_params(response, REDIRECT)
        assert params["state"] == state
        token = oauth.fetch_token(
            f"{server.base_url}/token", code=params["code"], code_verifier=verifier
        )
    return str(token["access_token"])


def test_decisions_follow_cli_changes_of_a_running_server(server: Server, tmp_path: Path) -> None:
    emails = server.create_users("pep", "alice", "bob", password=STRONG_PASSWORD)
    slug = f"pdp-{secrets.token_hex(3)}"
    _cli_json(server, "orgs", "create", "--name", "PDP", "--slug", slug, "--owner", emails["pep"])
    _cli_json(
        server, "orgs", "members", "add", slug, "--email", emails["alice"], "--role", "member"
    )
    _cli_json(server, "orgs", "members", "add", slug, "--email", emails["bob"], "--role", "reader")
    _cli_json(server, "models", "create", "--org", slug, "--id", "m1", "--attr", "tier=open")
    headers = {"Authorization": f"Bearer {_pep_token(server, emails['pep'])}"}
    headers["Ostiary-Organization"] = slug

    def decide(email: str, model: str = "m1") -> dict[str, Any]:
        body = {
            "subject": {"type": "user", "id": email},
            "action": {"name": "models:invoke"},
            "resource": {"type": "model", "id": model},
        }
        response = httpx.post(
            f"{server.base_url}/access/v1/evaluation", json=body, headers=headers, timeout=15.0
        )
        assert response.status_code == 200, response.text
        decided: dict[str, Any] = response.json()
        return decided

    metadata = httpx.get(f"{server.base_url}/.well-known/authzen-configuration", timeout=15.0)
    assert metadata.json()["access_evaluation_endpoint"] == (
        f"{server.base_url}/access/v1/evaluation"
    )
    assert decide(emails["alice"]) == {"decision": True}  # RBAC: member holds models:invoke
    assert decide(emails["bob"])["decision"] is False  # reader does not

    policy = tmp_path / "p.cedar"
    policy.write_text(
        '@id("closed-models")\n'
        "forbid(principal, action, resource is model)\n"
        ' when { resource has tier && resource.tier == "closed" };\n',
        encoding="utf-8",
    )
    assert _cli_json(server, "policies", "set", slug, "--file", str(policy))["version"] == 1
    assert decide(emails["alice"]) == {"decision": True}  # m1 is open
    _cli_json(server, "models", "update", "--org", slug, "--id", "m1", "--attr", "tier=closed")
    closed = decide(emails["alice"])  # the catalog change, at once
    assert closed["decision"] is False
    assert '"closed-models"' in closed["context"]["reason_admin"]["en"]
    # the request's properties win over the catalog
    body = {
        "subject": {"type": "user", "id": emails["alice"]},
        "action": {"name": "models:invoke"},
        "resource": {"type": "model", "id": "m1", "properties": {"tier": "open"}},
    }
    response = httpx.post(
        f"{server.base_url}/access/v1/evaluations",
        json={"evaluations": [body, {**body, "resource": {"type": "model", "id": "m1"}}]},
        headers=headers,
        timeout=15.0,
    )
    assert [e["decision"] for e in response.json()["evaluations"]] == [True, False]

    empty = tmp_path / "none.cedar"
    empty.write_text("// nothing\n", encoding="utf-8")
    report = _cli_json(server, "policies", "dry-run", slug, "--file", str(empty))
    assert report["changed"] >= 1  # an empty candidate would let the closed model through
    rolled = _cli_json(server, "policies", "set", slug, "--file", str(empty))
    assert rolled["version"] == 2
    assert decide(emails["alice"]) == {"decision": True}
