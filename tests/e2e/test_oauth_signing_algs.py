"""Per-client signing algorithms through the whole code flow, with independent verifiers.

Each client is registered with the CLI as an operator would (``clients create --id-token-alg
... --access-token-alg ...``, or nothing for the deployment defaults); Authlib runs the
authorization code flow over a real socket, and the tokens are verified against the JWKS
fetched over HTTP by a verifier that accepts only the algorithm the client was promised.

- OpenID Connect Core 1.0 section 15.1: RS256 is mandatory to implement, and relying parties
  such as next-auth v4, python-social-auth and mozilla-django-oidc accept only RS256 unless
  configured otherwise: a client registered without options gets RS256 ID tokens (Authlib's
  OIDC claims validation restricted to RS256 stands in for them).
- OpenID Connect Dynamic Client Registration 1.0 section 2 ``id_token_signed_response_alg``;
  RFC 9068 section 2.1 (access tokens: any asymmetric algorithm; ES256 by default).
- RFC 7518 section 3.3 (RS256) and 3.4 (ES256), RFC 8037 section 3.1 (EdDSA with Ed25519).
- OpenID Connect Core 1.0 section 3.1.3.6: ``at_hash`` is the left half of the access token's
  hash with the hash of the ID token's ``alg`` (SHA-512 for Ed25519, as the OpenID
  Foundation's errata and RFC 8037's Ed25519 hash say).
- Section 10.1.1 and issue 10: every algorithm has its own current key, all in JWKS; rotating
  one algorithm's key (``ostiary keys rotate --alg RS256``) never changes what a client of
  another algorithm receives.
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
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken
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
# client name -> (its `clients create` options, the ID token alg, the access token alg)
CLIENTS = {
    "default": ([], "RS256", "ES256"),
    "es": (["--id-token-alg", "ES256", "--access-token-alg", "ES256"], "ES256", "ES256"),
    "ed": (["--id-token-alg", "EdDSA", "--access-token-alg", "EdDSA"], "EdDSA", "EdDSA"),
    "rs": (["--id-token-alg", "RS256", "--access-token-alg", "RS256"], "RS256", "RS256"),
}


@dataclass
class Setup:
    server: Server
    clients: dict[str, dict[str, Any]]
    email: str


@pytest.fixture(scope="module")
def setup(server: Server) -> Setup:
    finish = start_clients(
        server,
        **{
            name: ["--redirect-uri", REDIRECT, *options]
            for name, (options, _, _) in CLIENTS.items()
        },
    )
    email = server.create_users("algs", password=STRONG_PASSWORD)["algs"]
    return Setup(server, finish(), email)


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def _left_half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _jwks(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        f"{server.base_url}/.well-known/jwks.json", timeout=15.0
    ).json()
    return body


def _code_flow(setup: Setup, name: str) -> tuple[dict[str, Any], str]:
    """Authlib's authorization code flow (PKCE, nonce) for client ``name``: tokens, nonce."""
    server, client = setup.server, setup.clients[name]
    oauth = OAuth2Client(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
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
        token: dict[str, Any] = oauth.fetch_token(
            f"{server.base_url}/token", code=params["code"], code_verifier=verifier
        )
    return token, nonce


def test_discovery_and_jwks_offer_every_algorithm(setup: Setup) -> None:
    server = setup.server
    doc = httpx.get(f"{server.base_url}/.well-known/openid-configuration", timeout=15.0).json()
    assert set(doc["id_token_signing_alg_values_supported"]) == {"RS256", "ES256", "EdDSA"}
    published = {(k["alg"], k["kty"]) for k in _jwks(server)["keys"]}
    assert {("RS256", "RSA"), ("ES256", "EC"), ("EdDSA", "OKP")} <= published
    listed = json.loads(server.cli("clients", "list", "--json").stdout)
    algs = {
        c["name"]: (c["id_token_signed_response_alg"], c["access_token_signed_response_alg"])
        for c in listed
    }
    assert algs["default"] == (None, None)  # the deployment defaults
    assert algs["ed"] == ("EdDSA", "EdDSA")


def test_an_rs256_only_relying_party_signs_in_with_the_default_registration(
    setup: Setup,
) -> None:
    """Authlib's OpenID Connect ID token validation, told to accept RS256 only (what next-auth
    v4, python-social-auth and mozilla-django-oidc do by default)."""
    token, nonce = _code_flow(setup, "default")
    client = setup.clients["default"]
    rs256_only = JsonWebToken(["RS256"])
    claims = rs256_only.decode(
        token["id_token"],
        JsonWebKey.import_key_set(_jwks(setup.server)),
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": setup.server.base_url}},
        claims_params={"nonce": nonce, "client_id": client["client_id"]},
    )
    claims.validate(leeway=60)  # iss, aud, exp, iat, nonce, azp and at_hash (section 3.1.3.7)
    assert claims.header["alg"] == "RS256"
    assert claims["at_hash"] == _left_half_hash(token["access_token"], "RS256")
    # An ES256-only verifier refuses the same token: the choice is real, not a default of
    # the verifier.
    with pytest.raises(Exception, match="alg"):
        JsonWebToken(["ES256"]).decode(
            token["id_token"], JsonWebKey.import_key_set(_jwks(setup.server))
        )


@pytest.mark.parametrize("name", ["default", "es", "ed", "rs"])
def test_each_client_gets_the_algorithms_it_was_registered_for(setup: Setup, name: str) -> None:
    server, client = setup.server, setup.clients[name]
    _, id_alg, access_alg = CLIENTS[name]
    token, nonce = _code_flow(setup, name)
    jwks = _jwks(server)
    keys = KeySet.import_key_set(jwks)
    algs = {key["kid"]: key["alg"] for key in jwks["keys"]}

    id_token = jwt.decode(token["id_token"], keys, algorithms=[id_alg])
    assert id_token.header["alg"] == id_alg == algs[id_token.header["kid"]]
    claims = id_token.claims
    assert claims["iss"] == server.base_url and claims["aud"] == client["client_id"]
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == _left_half_hash(token["access_token"], id_alg)
    assert claims["exp"] > time.time() > claims["iat"] - 60

    access = jwt.decode(token["access_token"], keys, algorithms=[access_alg])
    assert access.header["alg"] == access_alg == algs[access.header["kid"]]
    assert access.header["typ"] == "at+jwt"
    assert access.claims["sub"] == claims["sub"]
    assert access.claims["client_id"] == client["client_id"]

    # The server verifies its own tokens of every algorithm: userinfo (access token) ...
    userinfo = httpx.get(
        f"{server.base_url}/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=15.0,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == claims["sub"]
    # ... introspection (RFC 7662) ...
    introspected = httpx.post(
        f"{server.base_url}/introspect",
        data={"token": token["access_token"]},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15.0,
    )
    assert introspected.json()["active"] is True, introspected.text
    # ... and the ID token as id_token_hint (RP-Initiated Logout 1.0 section 2).
    logout = httpx.get(
        f"{server.base_url}/end_session",
        params={"id_token_hint": token["id_token"], "client_id": client["client_id"]},
        timeout=15.0,
    )
    assert logout.status_code == 200, logout.text


def test_rotating_one_algorithm_changes_nothing_for_the_others(setup: Setup) -> None:
    server = setup.server
    before = {name: _code_flow(setup, name)[0] for name in ("es", "ed", "rs")}
    kids = {name: _segment(token["id_token"], 0)["kid"] for name, token in before.items()}
    rotated = server.cli("keys", "rotate", "--alg", "RS256", "--lead-seconds", "0", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = str(json.loads(rotated.stdout)["kid"])
    assert json.loads(rotated.stdout)["alg"] == "RS256"

    deadline = time.monotonic() + KEY_RING_CACHE_S * 3
    while True:  # until this server has seen the new key
        after = {name: _code_flow(setup, name)[0] for name in ("rs", "es", "ed")}
        if _segment(after["rs"]["id_token"], 0)["kid"] == new_kid:
            break
        assert time.monotonic() < deadline, "the server never signed with the rotated key"
        time.sleep(0.5)
    assert _segment(after["rs"]["access_token"], 0)["kid"] == new_kid
    for name in ("es", "ed"):
        assert _segment(after[name]["id_token"], 0)["kid"] == kids[name]
        assert _segment(after[name]["access_token"], 0)["kid"] == kids[name]
    # The old RS256 key stays published while its tokens live; so do the others' keys.
    published = {k["kid"] for k in _jwks(server)["keys"]}
    assert {new_kid, *kids.values()} <= published
    old = jwt.decode(
        before["rs"]["id_token"], KeySet.import_key_set(_jwks(server)), algorithms=["RS256"]
    )
    assert old.header["kid"] == kids["rs"]
