"""OAuth 2.1 / OpenID Connect against a real ``ostiary dev`` server, driven by Authlib.

Authlib's httpx clients (an independent OAuth implementation) talk to the server over a real
socket; clients are registered with the CLI; the browser part of the code flow follows the
real HTML forms (sign-in, consent) over HTTP; tokens are verified with joserfc against the
JWKS fetched over HTTP. The in-process suite (tests/web/test_oauth_flow.py) covers the
details; this one proves the deployed process behaves the same, including under concurrency
and across processes (CLI deletes a client while the server has it cached).

RFC 6749 (sections 4.1, 4.4, 5.2, 6, 10.5), RFC 7636 (PKCE), RFC 7662, RFC 7009, RFC 9207,
RFC 9700 section 4.14 (refresh token rotation and reuse detection), OIDC Core 1.0.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import (
    authorize_over_http,
    callback_params,
    decode_verified,
    fetch_jwks,
    start_clients,
)

pytestmark = pytest.mark.e2e

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # nothing listens there: never followed
SCOPE = "openid profile email offline_access"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CLIENT_CACHE_S = 5.0  # the server caches client records up to this long
DELETE_DEADLINE_S = 20.0


@dataclass
class Setup:
    server: Server
    web: dict[str, Any]  # confidential, authorization_code + refresh_token
    machine: dict[str, Any]  # confidential, client_credentials, models:read
    doomed: dict[str, Any]  # confidential, client_credentials; deleted by one test
    users: dict[str, str]  # name -> e-mail (password STRONG_PASSWORD)
    clients: ExitStack = field(default_factory=ExitStack)  # Authlib clients, closed at the end

    def track(self, client: OAuth2Client) -> OAuth2Client:
        return self.clients.enter_context(client)

    def auth(self, client: dict[str, Any]) -> tuple[str, str]:
        return client["client_id"], client["client_secret"]


@pytest.fixture(scope="module")
def setup(server: Server) -> Iterator[Setup]:
    """Clients registered with the CLI; users of their own for the tests that revoke grants.

    Refresh token reuse revokes every token of that user and client, so those tests do not
    share a user with the others.
    """
    finish = start_clients(
        server,
        web=["--redirect-uri", REDIRECT],
        # machine is also a resource server for the issuer's audience: it introspects doomed's
        # tokens (RFC 7662 section 4).
        machine=[
            *("--grant-type", "client_credentials", "--scope", "models:read"),
            *("--introspect-audience", server.base_url),
        ],
        doomed=["--grant-type", "client_credentials", "--scope", "models:read"],
    )
    users = server.create_users("reuse", "race", password=STRONG_PASSWORD)
    users["admin"] = server.admin_email
    clients = finish()
    found = Setup(server, clients["web"], clients["machine"], clients["doomed"], users)
    with found.clients:
        yield found


def _password(setup: Setup, user: str) -> str:
    return setup.server.admin_password if user == "admin" else STRONG_PASSWORD


def _web_client(setup: Setup, redirect_uri: str = REDIRECT) -> OAuth2Client:
    return setup.track(
        OAuth2Client(
            client_id=setup.web["client_id"],
            client_secret=setup.web["client_secret"],
            redirect_uri=redirect_uri,
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=15.0,
        )
    )


def _authorize(
    setup: Setup, oauth: OAuth2Client, user: str = "admin", **extra: str
) -> tuple[str, str, dict[str, str]]:
    """Run the browser part for a new authorization request: (verifier, nonce, callback)."""
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    url, state = oauth.create_authorization_url(
        f"{setup.server.base_url}/authorize", code_verifier=verifier, nonce=nonce, **extra
    )
    with setup.server.client() as browser:
        response = authorize_over_http(
            browser,
            url,
            setup.users[user],
            _password(setup, user),
            expect_consent=True if extra.get("prompt") == "consent" else None,
        )
    params = callback_params(response, REDIRECT)
    assert params["state"] == state
    assert params["iss"] == setup.server.base_url  # RFC 9207
    assert params["code"]
    return verifier, nonce, params


def _code_tokens(setup: Setup, user: str = "admin") -> tuple[OAuth2Client, dict[str, Any]]:
    oauth = _web_client(setup)
    verifier, _, params = _authorize(setup, oauth, user)
    token = oauth.fetch_token(
        f"{setup.server.base_url}/token", code=params["code"], code_verifier=verifier
    )
    return oauth, dict(token)


def _introspect(setup: Setup, token: str, client: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{setup.server.base_url}/introspect",
        data={"token": token},
        auth=setup.auth(client or setup.web),
        timeout=15.0,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _token_request(setup: Setup, client: dict[str, Any], form: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{setup.server.base_url}/token", data=form, auth=setup.auth(client), timeout=15.0
    )


# -- the happy paths -----------------------------------------------------------------------


def test_discovery_over_http(setup: Setup) -> None:
    base = setup.server.base_url
    with httpx.Client(base_url=base, timeout=15.0) as http:
        oidc = http.get("/.well-known/openid-configuration").json()
        rfc8414 = http.get("/.well-known/oauth-authorization-server").json()
    assert oidc["issuer"] == rfc8414["issuer"] == base
    for name in ("authorization", "token", "userinfo", "revocation", "introspection"):
        assert oidc[f"{name}_endpoint"].startswith(base + "/"), name
    assert oidc["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["authorization_response_iss_parameter_supported"] is True


def test_code_flow_with_pkce_then_refresh_and_userinfo(setup: Setup) -> None:
    base = setup.server.base_url
    oauth = _web_client(setup)
    verifier, nonce, params = _authorize(setup, oauth, prompt="consent")
    token = oauth.fetch_token(
        f"{base}/token",
        authorization_response=f"{REDIRECT}?{urlencode(params)}",
        code_verifier=verifier,
    )
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    assert set(token["scope"].split()) == set(SCOPE.split())

    keys = fetch_jwks(base)
    header, access = decode_verified(token["access_token"], keys)
    assert header["typ"] == "at+jwt"  # RFC 9068 section 2.1
    assert access["iss"] == base and access["client_id"] == setup.web["client_id"]
    assert access["exp"] > time.time() > access["iat"] - 60
    _, id_token = decode_verified(token["id_token"], keys)
    assert id_token["iss"] == base
    assert id_token["aud"] == setup.web["client_id"] and id_token["nonce"] == nonce
    assert id_token["sub"] == access["sub"] and id_token["sid"] == access["sid"]
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert id_token["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    info = oauth.get(f"{base}/userinfo")
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == access["sub"]
    assert info.json()["email"] == setup.server.admin_email

    old_refresh = token["refresh_token"]
    refreshed = oauth.refresh_token(f"{base}/token")
    assert refreshed["refresh_token"] != old_refresh  # rotation
    assert refreshed["access_token"] != token["access_token"]
    _, again = decode_verified(refreshed["access_token"], keys)
    assert again["sub"] == access["sub"] and again["jti"] != access["jti"]
    _, new_id = decode_verified(refreshed["id_token"], keys)
    assert new_id["sub"] == id_token["sub"] and new_id["aud"] == setup.web["client_id"]
    # The client now sends the new access token.
    assert oauth.get(f"{base}/userinfo").json()["sub"] == access["sub"]

    # Consent is remembered: a second authorization goes straight back to the client.
    with setup.server.client() as browser:
        url, _ = oauth.create_authorization_url(
            f"{base}/authorize", code_verifier=secrets.token_urlsafe(48)
        )
        again_response = authorize_over_http(
            browser,
            url,
            setup.server.admin_email,
            setup.server.admin_password,
            expect_consent=False,
        )
    callback_params(again_response, REDIRECT)


def test_client_credentials_introspection_and_revocation(setup: Setup) -> None:
    base = setup.server.base_url
    machine = setup.track(
        OAuth2Client(
            client_id=setup.machine["client_id"],
            client_secret=setup.machine["client_secret"],
            timeout=15.0,
        )
    )
    token = machine.fetch_token(
        f"{base}/token", grant_type="client_credentials", scope="models:read"
    )
    assert "refresh_token" not in token and "id_token" not in token
    _, claims = decode_verified(token["access_token"], fetch_jwks(base))
    assert claims["sub"] == claims["client_id"] == setup.machine["client_id"]
    assert claims["scope"] == "models:read"

    found = machine.introspect_token(f"{base}/introspect", token=token["access_token"])
    assert found.status_code == 200
    body = found.json()
    assert body["active"] is True and body["client_id"] == setup.machine["client_id"]
    assert body["scope"] == "models:read" and body["sub"] == setup.machine["client_id"]

    revoked = machine.revoke_token(
        f"{base}/revoke", token=token["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200 and revoked.json() == {}
    assert revoked.headers["content-type"] == "application/json"
    gone = machine.introspect_token(f"{base}/introspect", token=token["access_token"])
    assert gone.json() == {"active": False}
    # RFC 7009 section 2.2: unknown tokens are "revoked" too.
    unknown = machine.revoke_token(f"{base}/revoke", token="not-a-token")
    assert unknown.status_code == 200

    denied = _token_request(
        setup, setup.machine, {"grant_type": "client_credentials", "scope": "models:write"}
    )
    assert denied.status_code == 400 and denied.json()["error"] == "invalid_scope"
    wrong = httpx.post(
        f"{base}/token",
        data={"grant_type": "client_credentials"},
        auth=(setup.machine["client_id"], "ost_cs_wrong"),
        timeout=15.0,
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")


# -- refused requests ----------------------------------------------------------------------


UNREGISTERED = (
    "https://evil.example/oauth/callback",
    REDIRECT + "/x",
    REDIRECT + "?a=1",
    REDIRECT.upper(),
    REDIRECT.replace("127.0.0.1", "localhost"),
    REDIRECT.replace(":9/", ":9/./"),
)


def test_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(setup: Setup) -> None:
    base = setup.server.base_url
    with setup.server.client() as anonymous, setup.server.client() as signed_in:
        # Signed in with consent given: still never a redirect to an unverified URI.
        url, _ = _web_client(setup).create_authorization_url(
            f"{base}/authorize", code_verifier=secrets.token_urlsafe(48)
        )
        ok = authorize_over_http(
            signed_in, url, setup.server.admin_email, setup.server.admin_password
        )
        callback_params(ok, REDIRECT)
        for redirect_uri in UNREGISTERED:
            url, _ = _web_client(setup, redirect_uri).create_authorization_url(
                f"{base}/authorize", code_verifier=secrets.token_urlsafe(48)
            )
            for browser in (anonymous, signed_in):
                response = browser.get(url, headers={"Accept": "text/html"})
                assert response.status_code == 400, (redirect_uri, response.status_code)
                assert "location" not in response.headers, redirect_uri
                assert response.headers["content-type"].startswith("text/html")
                assert "not registered" in response.text, response.text[:1000]


def test_missing_or_wrong_pkce_verifier_is_refused(setup: Setup) -> None:
    oauth = _web_client(setup)
    verifier, _, params = _authorize(setup, oauth)
    base = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT}
    missing = _token_request(setup, setup.web, base)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    for wrong in (secrets.token_urlsafe(48), verifier[:-1] + ("A" if verifier[-1] != "A" else "B")):
        refused = _token_request(setup, setup.web, {**base, "code_verifier": wrong})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    with pytest.raises(OAuthError) as caught:
        oauth.fetch_token(
            f"{setup.server.base_url}/token", code=params["code"], code_verifier="x" * 43
        )
    assert caught.value.error == "invalid_grant"
    # Failed attempts do not consume the code; the right verifier still works once.
    token = oauth.fetch_token(
        f"{setup.server.base_url}/token", code=params["code"], code_verifier=verifier
    )
    assert token["access_token"]


def test_code_replay_is_refused_and_revokes_the_first_tokens(setup: Setup) -> None:
    oauth = _web_client(setup)
    verifier, _, params = _authorize(setup, oauth)
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    first = _token_request(setup, setup.web, form)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert _introspect(setup, tokens["access_token"])["active"] is True
    assert _introspect(setup, tokens["refresh_token"])["active"] is True

    replay = _token_request(setup, setup.web, form)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    for value in (tokens["access_token"], tokens["refresh_token"]):
        assert _introspect(setup, value) == {"active": False}
    refresh = _token_request(
        setup, setup.web, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_refresh_token_reuse_revokes_the_family(setup: Setup) -> None:
    base = setup.server.base_url
    oauth, token = _code_tokens(setup, "reuse")
    stolen = token["refresh_token"]
    rotated = oauth.refresh_token(f"{base}/token", refresh_token=stolen)
    assert rotated["refresh_token"] != stolen
    assert _introspect(setup, rotated["access_token"])["active"] is True

    reuse = _token_request(
        setup, setup.web, {"grant_type": "refresh_token", "refresh_token": stolen}
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone, including what was issued after the stolen token.
    after = _token_request(
        setup,
        setup.web,
        {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
    )
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    for value in (rotated["access_token"], rotated["refresh_token"], token["access_token"]):
        assert _introspect(setup, value) == {"active": False}


def test_revoking_a_refresh_token_revokes_the_access_tokens_of_its_grant(setup: Setup) -> None:
    """RFC 7009 section 2.1: the access tokens based on the same grant (the code's and each
    refresh's) go with the refresh token; another grant of the same user and client stays."""
    base = setup.server.base_url
    oauth, token = _code_tokens(setup)
    refreshed = oauth.refresh_token(f"{base}/token", refresh_token=token["refresh_token"])
    _, other = _code_tokens(setup)
    grant = (token["access_token"], refreshed["access_token"])
    for value in (*grant, other["access_token"]):
        assert _introspect(setup, value)["active"] is True

    revoked = oauth.revoke_token(
        f"{base}/revoke", token=refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    for value in (*grant, refreshed["refresh_token"]):
        assert _introspect(setup, value) == {"active": False}
    userinfo = httpx.get(
        f"{base}/userinfo",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        timeout=15.0,
    )
    assert userinfo.status_code == 401
    for value in (other["access_token"], other["refresh_token"]):
        assert _introspect(setup, value)["active"] is True


RACERS = 20


async def _race(
    setup: Setup, call: Callable[[AsyncOAuth2Client], Awaitable[Any]]
) -> tuple[dict[str, Any], list[OAuthError]]:
    """``call`` by RACERS Authlib clients at once: (the one token won, the OAuth errors)."""
    base = setup.server.base_url
    clients = [
        AsyncOAuth2Client(
            client_id=setup.web["client_id"],
            client_secret=setup.web["client_secret"],
            redirect_uri=REDIRECT,
            timeout=30.0,
        )
        for _ in range(RACERS)
    ]
    try:
        # One connection each, opened first, so the requests really are in flight together.
        await asyncio.gather(
            *(c.request("GET", f"{base}/healthz", withhold_token=True) for c in clients)
        )
        results = await asyncio.gather(*(call(c) for c in clients), return_exceptions=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, OAuthError)
    ]
    assert not unexpected, unexpected
    won = [dict(r) for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, OAuthError)]
    assert len(won) == 1 and len(lost) == RACERS - 1, results
    assert {e.error for e in lost} == {"invalid_grant"}, [e.description for e in lost]
    return won[0], lost


async def test_concurrent_refresh_exactly_one_succeeds(setup: Setup) -> None:
    _, token = await asyncio.to_thread(_code_tokens, setup, "race")
    url = f"{setup.server.base_url}/token"
    await _race(setup, lambda c: c.refresh_token(url, refresh_token=token["refresh_token"]))


async def test_concurrent_code_exchange_exactly_one_succeeds_and_revokes(setup: Setup) -> None:
    """Parallel exchanges of one code: one wins, and as every other one is a second use of
    the code, the tokens issued for it are revoked (RFC 6749 section 4.1.2), on any backend.

    Fails on PostgreSQL today: a request that loses the compare-and-set in
    ``codes.consume`` ("lost the race for the code", AuthorizationCodeGrant.handle in
    src/ostiary/features/oauth/grants/authorization_code.py) answers invalid_grant without
    revoking what the winner got; SQLite serializes the requests so the losers take the
    replay branch instead.
    """
    oauth = _web_client(setup)
    verifier, _, params = await asyncio.to_thread(_authorize, setup, oauth)
    url = f"{setup.server.base_url}/token"
    token, _ = await _race(
        setup, lambda c: c.fetch_token(url, code=params["code"], code_verifier=verifier)
    )
    for value in (token["access_token"], token["refresh_token"]):
        assert await asyncio.to_thread(_introspect, setup, value) == {"active": False}, (
            "a concurrent second use of the code did not revoke the tokens issued for it"
        )


# -- malformed and oversized input: always a 4xx, never a 5xx --------------------------------

_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _bodies(setup: Setup) -> list[tuple[str, str, bytes, dict[str, str], bool]]:
    """(case, path, body, headers, authenticated) for the token-side endpoints."""
    cc = b"grant_type=client_credentials"
    return [
        ("100 KB scope", "/token", cc + b"&scope=" + b"a" * 100_000, FORM, True),
        ("100 KB of scope words", "/token", cc + b"&scope=" + b"models:read+" * 8500, FORM, True),
        ("1 MB parameter", "/token", cc + b"&x=" + b"a" * 1_000_000, FORM, True),
        ("repeated grant_type", "/token", cc + b"&" + cc, FORM, True),
        ("repeated scope", "/token", cc + b"&scope=models:read&scope=models:read", FORM, True),
        ("percent-encoded invalid UTF-8", "/token", cc + b"&scope=%ff%fe", FORM, True),
        ("raw invalid UTF-8", "/token", cc + b"&scope=\xff\xfe\xc3\x28", FORM, True),
        ("overlong UTF-8", "/token", cc + b"&scope=%c0%af", FORM, True),
        ("NUL byte", "/token", cc + b"%00&scope=models:read", FORM, True),
        ("broken percent escape", "/token", cc + b"&scope=%zz%", FORM, True),
        (
            "5000 fields",
            "/token",
            b"&".join(b"f%d=1" % i for i in range(5000)) + b"&" + cc,
            FORM,
            True,
        ),
        (
            "JSON body",
            "/token",
            b'{"grant_type": "client_credentials"}',
            {"Content-Type": "application/json"},
            True,
        ),
        ("no content type", "/token", cc, {}, True),
        (
            "multipart body",
            "/token",
            b'--x\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--x--\r\n',
            {"Content-Type": "multipart/form-data; boundary=x"},
            True,
        ),
        ("empty body", "/token", b"", FORM, True),
        ("unsupported grant", "/token", b"grant_type=password&username=a&password=b", FORM, True),
        (
            "50 KB code",
            "/token",
            b"grant_type=authorization_code&redirect_uri=x&code_verifier="
            + b"v" * 43
            + b"&code="
            + b"c" * 50_000,
            FORM,
            True,
        ),
        (
            "50 KB refresh token",
            "/token",
            b"grant_type=refresh_token&refresh_token=ost_rt_" + b"r" * 50_000,
            FORM,
            True,
        ),
        ("malformed Basic", "/token", cc, {**FORM, "Authorization": "Basic !!!"}, False),
        (
            "Basic, not UTF-8",
            "/token",
            cc,
            {**FORM, "Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
            False,
        ),
        (
            "Basic, no colon",
            "/token",
            cc,
            {**FORM, "Authorization": "Basic " + base64.b64encode(b"abc").decode()},
            False,
        ),
        ("10 KB client_id", "/token", cc + b"&client_id=" + b"i" * 10_000, FORM, False),
        ("introspect 100 KB token", "/introspect", b"token=" + b"a.b." * 25_000, FORM, True),
        ("introspect invalid UTF-8", "/introspect", b"token=%ff", FORM, True),
        (
            "introspect JSON",
            "/introspect",
            b'{"token": "x"}',
            {"Content-Type": "application/json"},
            True,
        ),
        ("introspect no token", "/introspect", b"", FORM, True),
        ("revoke repeated token", "/revoke", b"token=a&token=b", FORM, True),
        ("revoke raw invalid UTF-8", "/revoke", b"token=\xc3\x28", FORM, True),
        ("userinfo form, invalid UTF-8", "/userinfo", b"access_token=%ff", FORM, False),
    ]


def test_malformed_and_oversized_requests_get_4xx_never_5xx(setup: Setup) -> None:
    failures: list[str] = []
    with httpx.Client(base_url=setup.server.base_url, timeout=30.0) as http:
        for case, path, body, headers, authenticated in _bodies(setup):
            if authenticated:
                response = http.post(
                    path, content=body, headers=headers, auth=setup.auth(setup.machine)
                )
            else:
                response = http.post(path, content=body, headers=headers)
            if not 400 <= response.status_code < 500:
                failures.append(f"{case}: {response.status_code} {response.text[:200]}")
            elif (
                response.headers.get("content-type", "").startswith("application/json")
                and "error" not in response.json()
            ):
                failures.append(f"{case}: no error member: {response.text[:200]}")
        authorize = {
            "response_type": "code",
            "client_id": setup.web["client_id"],
            "redirect_uri": REDIRECT,
            "code_challenge": _CHALLENGE,
            "code_challenge_method": "S256",
        }
        # RFC 6749 4.1.2.1: with a good client and redirect URI, an over-long or repeated
        # parameter is an error redirect, never a 5xx.
        redirected = {
            "authorize 60 KB scope": urlencode({**authorize, "scope": "a" * 60_000}),
            "authorize repeated response_type": urlencode(authorize) + "&response_type=code",
        }
        for case, query in redirected.items():
            response = http.get("/authorize?" + query, headers={"Accept": "text/html"})
            location = response.headers.get("location", "")
            if response.status_code != 303 or not location.startswith(REDIRECT + "?"):
                failures.append(f"{case}: {response.status_code} {response.headers}")
            elif parse_qs(urlsplit(location).query)["error"] != ["invalid_request"]:
                failures.append(f"{case}: {location}")
        queries = {
            "authorize invalid UTF-8 client_id": "response_type=code&client_id=%ff%fe",
            "authorize NUL": urlencode(authorize) + "&state=%00",
            "authorize 65 fields": urlencode(authorize) + "".join(f"&x{i}=1" for i in range(65)),
        }
        for case, query in queries.items():
            response = http.get("/authorize?" + query, headers={"Accept": "text/html"})
            if not 400 <= response.status_code < 500 or "location" in response.headers:
                failures.append(f"{case}: {response.status_code} {response.headers}")
        posts = {
            "authorize POST 100 KB scope": urlencode(
                {**authorize, "scope": "a" * 100_000}
            ).encode(),
            "authorize POST raw invalid UTF-8": b"response_type=code&client_id=\xff",
        }
        for case, body in posts.items():
            response = http.post(
                "/authorize", content=body, headers={**FORM, "Accept": "text/html"}
            )
            if not 400 <= response.status_code < 500 or "location" in response.headers:
                failures.append(f"{case}: {response.status_code} {response.headers}")
    assert setup.server.process.poll() is None, "the server died"
    assert not failures, "\n".join(failures)


# -- a deleted client ----------------------------------------------------------------------


def test_deleted_client_is_refused_within_seconds(setup: Setup) -> None:
    base = setup.server.base_url
    doomed = setup.track(
        OAuth2Client(
            client_id=setup.doomed["client_id"],
            client_secret=setup.doomed["client_secret"],
            timeout=15.0,
        )
    )
    token = doomed.fetch_token(f"{base}/token", grant_type="client_credentials")  # now cached
    assert _introspect(setup, token["access_token"], setup.machine)["active"] is True

    done = setup.server.cli("clients", "delete", setup.doomed["client_id"], "--json")
    assert done.returncode == 0, done.stderr
    deleted_at = time.monotonic()
    assert '"deleted": true' in done.stdout

    form = {"grant_type": "client_credentials"}
    last: httpx.Response | None = None
    while time.monotonic() - deleted_at < DELETE_DEADLINE_S:
        last = _token_request(setup, setup.doomed, form)
        if last.status_code != 200:
            break
        time.sleep(0.25)
    assert last is not None
    refused_after = time.monotonic() - deleted_at
    assert last.status_code == 401, (last.status_code, last.text, refused_after)
    assert last.json()["error"] == "invalid_client"
    assert refused_after <= CLIENT_CACHE_S + 2.0, f"still served {refused_after:.1f} s later"
    # Its tokens stop working too (the server picks up the CLI's revocation from the database).
    while time.monotonic() - deleted_at < DELETE_DEADLINE_S:
        if _introspect(setup, token["access_token"], setup.machine) == {"active": False}:
            break
        time.sleep(0.25)
    assert _introspect(setup, token["access_token"], setup.machine) == {"active": False}
