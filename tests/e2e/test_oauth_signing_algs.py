"""RS256 and EdDSA signing keys through the whole code flow, with independent clients.

An operator rotates to the algorithm with ``ostiary keys rotate --alg ...`` (the CLI, against
the running server's state); Authlib then runs authorization code + PKCE over a real socket,
and joserfc verifies the ID token and the access token against the JWKS fetched over HTTP,
accepting only that algorithm.

- RFC 7518 section 3.3 (RS256), RFC 8037 section 3.1 (EdDSA with Ed25519).
- OpenID Connect Core 1.0 section 3.1.3.6: ``at_hash`` is the left half of the access token's
  hash with the hash of the ID token's ``alg`` (SHA-256 for RS256; SHA-512 for Ed25519, as
  the OpenID Foundation's errata and RFC 8037's Ed25519 hash say).
- RFC 9068 section 2: the access token's ``typ`` and claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixture)
    authorize_over_http,
    callback_params,
    one_backend,
    start_clients,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # never followed
SCOPE = "openid profile email"
KEY_RING_CACHE_S = 5.0  # the server re-reads its signing keys at most this often


@dataclass
class Setup:
    server: Server
    web: dict[str, Any]
    machine: dict[str, Any]
    email: str


@pytest.fixture(scope="module")
def setup(server: Server) -> Setup:
    finish = start_clients(
        server,
        web=["--redirect-uri", REDIRECT],
        machine=["--grant-type", "client_credentials", "--scope", "models:read"],
    )
    email = server.create_users("algs", password=STRONG_PASSWORD)["algs"]
    clients = finish()
    return Setup(server, clients["web"], clients["machine"], email)


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def _rotate_and_wait_until_signing(setup: Setup, alg: str) -> str:
    """Rotate to a new ``alg`` key that signs at once; the kid, once tokens carry it."""
    rotated = setup.server.cli("keys", "rotate", "--alg", alg, "--lead-seconds", "0", "--json")
    assert rotated.returncode == 0, rotated.stderr
    kid = str(json.loads(rotated.stdout)["kid"])
    machine = setup.machine
    with OAuth2Client(machine["client_id"], machine["client_secret"], timeout=15.0) as oauth:
        deadline = time.monotonic() + KEY_RING_CACHE_S * 3
        while True:
            token = oauth.fetch_token(
                f"{setup.server.base_url}/token", grant_type="client_credentials"
            )
            if _segment(token["access_token"], 0)["kid"] == kid:
                return kid
            assert time.monotonic() < deadline, f"the server never signed with {alg} key {kid}"
            time.sleep(0.2)


def _left_half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_code_flow_tokens_signed_with_the_rotated_key_verify_independently(
    setup: Setup, alg: str
) -> None:
    server, web = setup.server, setup.web
    kid = _rotate_and_wait_until_signing(setup, alg)

    oauth = OAuth2Client(
        client_id=web["client_id"],
        client_secret=web["client_secret"],
        redirect_uri=REDIRECT,
        scope=SCOPE,
        code_challenge_method="S256",
        timeout=15.0,
    )
    with oauth:
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
        url, state = oauth.create_authorization_url(
            f"{server.base_url}/authorize", code_verifier=verifier, nonce=nonce
        )
        with server.client() as browser:
            response = authorize_over_http(browser, url, setup.email, STRONG_PASSWORD)
        params = callback_params(response, REDIRECT)
        assert params["state"] == state
        token = oauth.fetch_token(
            f"{server.base_url}/token", code=params["code"], code_verifier=verifier
        )

    jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json", timeout=15.0).json()
    published = {key["kid"]: key for key in jwks["keys"]}
    assert published[kid]["alg"] == alg
    assert published[kid]["kty"] == {"RS256": "RSA", "EdDSA": "OKP"}[alg]
    keys = KeySet.import_key_set(jwks)

    id_token = jwt.decode(token["id_token"], keys, algorithms=[alg])
    assert id_token.header["alg"] == alg and id_token.header["kid"] == kid
    claims = id_token.claims
    assert claims["iss"] == server.base_url and claims["aud"] == web["client_id"]
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == _left_half_hash(token["access_token"], alg)
    assert claims["exp"] > time.time() > claims["iat"] - 60

    access = jwt.decode(token["access_token"], keys, algorithms=[alg])
    assert access.header["alg"] == alg and access.header["kid"] == kid
    assert access.header["typ"] == "at+jwt"
    assert access.claims["sub"] == claims["sub"]
    assert access.claims["client_id"] == web["client_id"]
    assert access.claims["iss"] == server.base_url

    userinfo = httpx.get(
        f"{server.base_url}/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=15.0,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == claims["sub"]
    assert userinfo.json()["email"] == setup.email
