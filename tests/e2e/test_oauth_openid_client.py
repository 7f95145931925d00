"""The npm ``openid-client`` library (v6, panva) as the relying party of a real ``ostiary dev``.

A Node script (tests/e2e/js/openid_client_flow.mjs) does discovery, builds the authorization
URL with PKCE, state and nonce, and after the browser part (scripted here over HTTP through the
real sign-in and consent pages) exchanges the code, refreshes, fetches userinfo, introspects
and revokes. openid-client checks the server strictly: discovery metadata, RFC 9207 ``iss``
in the authorization response, the ID token's claims (iss, aud, nonce, exp, iat), the token
and userinfo response formats. The ID token signature is verified here too, with joserfc
against the JWKS fetched over HTTP.

Needs Node.js 20+ and npm (packages pinned in tests/e2e/js/package-lock.json, installed with
``npm ci`` when node_modules is missing); skipped without them, failed when
``OSTIARY_TEST_REQUIRE_BROWSER=1`` (set by ``scripts/check.py``).
"""

from __future__ import annotations

import selectors
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixtures)
    authorize_over_http,
    callback_params,
    create_clients,
    decode_verified,
    fetch_jwks,
    js_deps,
    one_backend,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/openid-client/callback"  # never followed: nothing listens
LOGGED_OUT = "http://127.0.0.1:9/openid-client/bye"
SCRIPT = "openid_client_flow.mjs"
NODE_TIMEOUT_S = 60.0


@dataclass
class Setup:
    server: Server
    client: dict[str, Any]
    js_dir: Path


@pytest.fixture(scope="module")
def setup(server: Server, js_deps: Path) -> Setup:  # noqa: F811 (imported fixture)
    clients = create_clients(
        server,
        rp=["--redirect-uri", REDIRECT, "--post-logout-redirect-uri", LOGGED_OUT],
    )
    return Setup(server, clients["rp"], js_deps)


class NodeFlow:
    """The Node relying party: JSON lines out, the callback URL in."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def read(self, timeout: float = NODE_TIMEOUT_S) -> dict[str, Any]:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError(f"no output from node within {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"node exited ({self.process.returncode}) early:\n{stderr}")
        message: dict[str, Any] = orjson.loads(line)
        return message

    def finish(self, callback_url: str) -> dict[str, Any]:
        out, err = self.process.communicate(callback_url + "\n", timeout=NODE_TIMEOUT_S)
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines, f"node printed nothing (exit {self.process.returncode}):\n{err}"
        message: dict[str, Any] = orjson.loads(lines[-1])
        message["_exit"] = self.process.returncode
        message["_stderr"] = err
        return message


@contextmanager
def node_flow(setup: Setup) -> Iterator[NodeFlow]:
    process = subprocess.Popen(
        [
            "node",
            SCRIPT,
            setup.server.base_url,
            setup.client["client_id"],
            setup.client["client_secret"],
            REDIRECT,
            LOGGED_OUT,
        ],
        cwd=setup.js_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield NodeFlow(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _begin(flow: NodeFlow, setup: Setup) -> dict[str, Any]:
    started = flow.read()
    assert started["step"] == "authorize", started
    assert started["issuer"] == setup.server.base_url
    url = urlsplit(started["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{setup.server.base_url}/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["state"] == started["state"] and query["nonce"] == started["nonce"]
    return started


def test_code_flow_refresh_userinfo_introspection_revocation(setup: Setup) -> None:
    server = setup.server
    with node_flow(setup) as flow, server.client() as browser:
        started = _begin(flow, setup)
        response = authorize_over_http(
            browser, started["url"], server.admin_email, server.admin_password
        )
        params = callback_params(response, REDIRECT)
        assert params["iss"] == server.base_url and params["state"] == started["state"]
        result = flow.finish(response.headers["location"])
        assert result["step"] == "done" and result["_exit"] == 0, result

        claims = result["claims"]
        assert claims["iss"] == server.base_url
        assert claims["aud"] == setup.client["client_id"]
        assert claims["nonce"] == started["nonce"]
        assert claims["email"] == server.admin_email
        tokens, refreshed = result["tokens"], result["refreshed"]
        assert tokens["token_type"].lower() == "bearer" and tokens["expires_in"] > 0
        assert set(tokens["scope"].split()) == {"openid", "profile", "email", "offline_access"}

        # The refresh rotated everything; the new ID token is about the same user. The grant
        # has offline_access, so it outlives the browser session: no sid (README, OIDC Core 11).
        for name in ("access_token", "refresh_token", "id_token"):
            assert refreshed[name] and refreshed[name] != tokens[name], name
        assert result["refreshed_claims"]["sub"] == claims["sub"]
        assert "sid" not in result["refreshed_claims"] and claims["sid"]
        assert "nonce" not in result["refreshed_claims"]  # OIDC Core 12.2

        assert result["userinfo"]["sub"] == claims["sub"]
        assert result["userinfo"]["email"] == server.admin_email
        introspection = result["introspection"]
        assert introspection["active"] is True and introspection["sub"] == claims["sub"]
        assert introspection["client_id"] == setup.client["client_id"]
        assert result["after_revocation"] == {"active": False}

        # Independent check of the signatures against the published keys.
        keys = fetch_jwks(server.base_url)
        _, verified = decode_verified(tokens["id_token"], keys)
        assert verified == claims
        _, access = decode_verified(refreshed["access_token"], keys)
        assert access["sub"] == claims["sub"] and "sid" not in access  # offline grant

        # openid-client's RP-initiated logout URL ends this browser's session at Ostiary.
        end = urlsplit(result["end_session_url"])
        assert f"{end.scheme}://{end.netloc}{end.path}" == f"{server.base_url}/end_session"
        logout = browser.get(result["end_session_url"])
        assert logout.status_code == 303, (logout.status_code, logout.text[:1000])
        assert logout.headers["location"] == LOGGED_OUT
        assert browser.get("/account").status_code == 303  # signed out


def test_denied_consent_reaches_openid_client_as_access_denied(setup: Setup) -> None:
    """The error redirect carries ``state`` and ``iss``, so the RP can trust and report it."""
    server = setup.server
    with node_flow(setup) as flow, server.client() as browser:
        started = _begin(flow, setup)
        response = authorize_over_http(
            browser,
            started["url"] + "&prompt=consent",
            server.admin_email,
            server.admin_password,
            expect_consent=True,
            decision="deny",
        )
        params = callback_params(response, REDIRECT)
        assert params["error"] == "access_denied" and params["iss"] == server.base_url
        result = flow.finish(response.headers["location"])
    assert result["step"] == "error" and result["_exit"] == 1, result
    assert result.get("error") == "access_denied", result
    assert result.get("code") == "OAUTH_AUTHORIZATION_RESPONSE_ERROR", result
