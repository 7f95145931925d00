"""Introspection is for resource servers of the token's audience (RFC 7662 section 4), and
``resource`` repeats at the token endpoint (RFC 8707 section 2), against a real server.

Clients are registered with ``ostiary clients create --introspect-audience`` (``--json``);
Authlib requests and introspects the tokens; joserfc reads them against the published JWKS.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import create_clients

pytestmark = pytest.mark.e2e

API = "https://api.example"
FILES = "https://files.example"


def _oauth(client: dict[str, Any]) -> OAuth2Client:
    return OAuth2Client(
        client_id=client["client_id"], client_secret=client["client_secret"], timeout=15.0
    )


def test_resource_servers_introspect_tokens_of_their_audience_only(server: Server) -> None:
    base = server.base_url
    clients = create_clients(
        server,
        machine=[
            *("--grant-type", "client_credentials", "--scope", "models:read"),
            *("--resource", API, "--resource", FILES),
        ],
        api=["--grant-type", "client_credentials", "--introspect-audience", API],
        nosy=["--grant-type", "client_credentials"],
    )
    assert clients["api"]["introspection_audiences"] == [API]
    assert clients["nosy"]["introspection_audiences"] == []
    listed = orjson.loads(server.cli("clients", "list", "--json").stdout)
    assert {c["client_id"]: c["introspection_audiences"] for c in listed}[
        clients["api"]["client_id"]
    ] == [API]

    # Two resources in one token request (httpx repeats the key for a list value).
    machine = clients["machine"]
    issued = httpx.post(
        f"{base}/token",
        data={"grant_type": "client_credentials", "resource": [FILES, API]},
        auth=(machine["client_id"], machine["client_secret"]),
        timeout=15.0,
    )
    assert issued.status_code == 200, issued.text
    access = issued.json()["access_token"]
    jwks = KeySet.import_key_set(httpx.get(f"{base}/.well-known/jwks.json", timeout=10).json())
    assert jwt.decode(access, jwks).claims["aud"] == [FILES, API]

    with _oauth(clients["api"]) as api, _oauth(clients["nosy"]) as nosy:
        seen = api.introspect_token(f"{base}/introspect", token=access).json()
        assert seen["active"] is True and seen["client_id"] == machine["client_id"]
        assert nosy.introspect_token(f"{base}/introspect", token=access).json() == {"active": False}
    with _oauth(machine) as own:
        narrowed = own.fetch_token(f"{base}/token", grant_type="client_credentials", resource=FILES)
        assert jwt.decode(narrowed["access_token"], jwks).claims["aud"] == FILES
        # FILES has no registered resource server; the token's own client still sees it.
        assert own.introspect_token(f"{base}/introspect", token=narrowed["access_token"]).json()[
            "active"
        ]
    with _oauth(clients["api"]) as api:
        assert api.introspect_token(
            f"{base}/introspect", token=narrowed["access_token"]
        ).json() == {"active": False}


def test_create_refuses_a_bad_introspection_audience(server: Server) -> None:
    result = server.cli(
        "clients", "create", "--name", "bad", "--grant-type", "client_credentials",
        "--introspect-audience", "not-a-uri",
    )  # fmt: skip
    assert result.returncode == 2
    assert "introspection audience" in result.stderr
    public = server.cli(
        "clients", "create", "--name", "spa", "--public", "--redirect-uri",
        "http://127.0.0.1:9/cb", "--introspect-audience", API,
    )  # fmt: skip
    assert public.returncode == 2
    assert "public clients cannot introspect" in public.stderr
