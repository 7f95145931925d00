"""OAuth 2.1 / OIDC flows in-process, driven by Authlib (an independent client) over ASGI,
with tokens verified by joserfc against the published JWKS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.protocol.oidc import ACR_MFA, ACR_ONE_FACTOR
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "grace@example.com"
REDIRECT = "https://app.example/callback"
ISSUER = "http://testserver"


@pytest.fixture
async def setup(app: Any) -> dict[str, Any]:
    rt = app.state.runtime
    async with rt.unit() as unit:
        await unit.keys.ensure_keys()
        user = await unit.accounts.create_user(
            EMAIL, PASSWORD, name="Grace Hopper", email_verified=True
        )
        client, secret = await unit.clients.register(
            ClientRegistration(
                name="Notebook",
                redirect_uris=(REDIRECT,),
                post_logout_redirect_uris=("https://app.example/bye",),
            )
        )
        machine, machine_secret = await unit.clients.register(
            ClientRegistration(
                name="Batch",
                grant_types=("client_credentials",),
                scopes=("models:read", "models:write"),
                resources=("https://api.example",),
            )
        )
    return {
        "user": user,
        "client": client,
        "secret": secret,
        "machine": machine,
        "machine_secret": machine_secret,
    }


def _oauth(app: Any, client_id: str, secret: str | None, **kw: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope="openid profile email offline_access",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
        **kw,
    )


async def _authorize(browser: httpx.AsyncClient, url: str) -> httpx.Response:
    """Follow the authorization request through sign-in and consent like a person would."""
    response = await browser.get(url)
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        await sign_in(
            browser,
            EMAIL,
            next_path=parse_qs(urlsplit(response.headers["location"]).query)["next"][0],
        )
        response = await browser.get(url)
    if response.status_code == 200 and "consent-form" in response.text:
        query = response.text.split('name="request" value="')[1].split('"')[0]
        import html

        response = await browser.post(
            "/authorize/consent",
            data={
                "csrf_token": csrf_from(response.text),
                "request": html.unescape(query),
                "decision": "allow",
            },
        )
    return response


async def _code_flow(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], **extra: str
) -> tuple[AsyncOAuth2Client, dict[str, Any], str]:
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(8)
    url, state = oauth.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=verifier, nonce=nonce, **extra
    )
    response = await _authorize(client, url)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state]
    assert params["iss"] == [ISSUER]  # RFC 9207
    token = await oauth.fetch_token(
        f"{ISSUER}/token", authorization_response=location, code_verifier=verifier
    )
    return oauth, token, nonce


async def _code_redemption(
    app: Any, browser: httpx.AsyncClient, client_id: str, secret: str
) -> tuple[AsyncOAuth2Client, dict[str, str]]:
    """A new authorization request followed through sign-in and consent in ``browser``: the
    client's Authlib session and the token request that redeems the code (RFC 6749 section
    4.1.3, with the PKCE verifier), not yet sent."""
    oauth = _oauth(app, client_id, secret)
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
    location = (await _authorize(browser, url)).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    return oauth, form


async def _refresh(
    client: httpx.AsyncClient, auth: tuple[str, str], refresh_token: str, **extra: str
) -> httpx.Response:
    """The token endpoint's answer to a refresh request (RFC 6749 section 6) by the client
    ``auth`` authenticates; ``extra`` adds parameters (``scope``)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await client.post("/token", data=data, auth=auth)


async def _jwks(client: httpx.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())


async def test_discovery_documents(client: httpx.AsyncClient) -> None:
    oidc = (await client.get("/.well-known/openid-configuration")).json()
    rfc8414 = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert oidc["issuer"] == rfc8414["issuer"] == ISSUER
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["authorization_response_iss_parameter_supported"] is True
    assert oidc["acr_values_supported"] == [
        ACR_ONE_FACTOR,
        ACR_MFA,
    ]  # no passkeys on http://testserver


async def test_code_flow_with_pkce_tokens_and_userinfo(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    oauth, token, nonce = await _code_flow(app, client, setup)
    keys = await _jwks(client)
    access = jwt.decode(token["access_token"], keys, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt"  # RFC 9068 section 2.1
    claims = access.claims
    assert claims["iss"] == ISSUER and claims["sub"] == setup["user"].id
    assert claims["client_id"] == setup["client"].client_id
    assert set(claims["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    assert {"exp", "iat", "jti", "sid", "auth_time", "amr"} <= set(claims)
    # A password sign-in (amr "pwd") is the password class, in both tokens (RFC 9068
    # section 2.2.1, OIDC Core section 2).
    assert claims["amr"] == ["pwd"] and claims["acr"] == ACR_ONE_FACTOR
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert id_token["acr"] == ACR_ONE_FACTOR and id_token["amr"] == ["pwd"]
    assert id_token["aud"] == setup["client"].client_id and id_token["nonce"] == nonce
    assert id_token["sid"] == claims["sid"] and id_token["azp"] == setup["client"].client_id
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert id_token["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert token["refresh_token"].startswith("ost_rt_")
    info = (await oauth.get(f"{ISSUER}/userinfo")).json()
    assert info == {
        "sub": setup["user"].id,
        "name": "Grace Hopper",
        "email": EMAIL,
        "email_verified": True,
        "updated_at": info["updated_at"],
    }


async def test_token_response_is_not_cacheable(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    machine = setup["machine"]
    response = await client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(machine.client_id, setup["machine_secret"]),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_code_replay_is_refused_and_revokes_its_tokens(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, form = await _code_redemption(app, client, setup["client"].client_id, setup["secret"])
    auth = (setup["client"].client_id, setup["secret"])
    first = await client.post("/token", data=form, auth=auth)
    assert first.status_code == 200
    replay = await client.post("/token", data=form, auth=auth)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    tokens = first.json()
    for value in (tokens["access_token"], tokens["refresh_token"]):
        result = await client.post("/introspect", data={"token": value}, auth=auth)
        assert result.json() == {"active": False}


async def test_wrong_pkce_verifier_and_wrong_redirect_uri(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
    code = parse_qs(urlsplit((await _authorize(client, url)).headers["location"]).query)["code"][0]
    auth = (setup["client"].client_id, setup["secret"])
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    bad = await client.post("/token", data={**base, "code_verifier": "x" * 50}, auth=auth)
    assert bad.json()["error"] == "invalid_grant"
    missing = await client.post("/token", data=base, auth=auth)
    assert missing.json()["error"] == "invalid_request"
    other = await client.post(
        "/token",
        data={**base, "code_verifier": verifier, "redirect_uri": REDIRECT + "x"},
        auth=auth,
    )
    assert other.json()["error"] == "invalid_grant"
    good = await client.post("/token", data={**base, "code_verifier": verifier}, auth=auth)
    assert good.status_code == 200  # failures above did not consume the code


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"resource": "https://other.example"}, "invalid_target"),
    ],
)
async def test_authorization_errors_redirect_with_state_and_iss(
    client: httpx.AsyncClient, setup: dict[str, Any], params: dict[str, str | None], error: str
) -> None:
    query = {
        "response_type": "code",
        "client_id": setup["client"].client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    query.update(params)  # type: ignore[arg-type]
    response = await client.get(
        "/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})
    )
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    got = parse_qs(target.query)
    assert got["error"] == [error] and got["state"] == ["s1"] and got["iss"] == [ISSUER]


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://evil.example/cb", REDIRECT + "/x", REDIRECT.upper(), REDIRECT + "?a=1"],
)
async def test_unregistered_redirect_uri_is_never_followed(
    client: httpx.AsyncClient, setup: dict[str, Any], redirect_uri: str
) -> None:
    query = {
        "response_type": "code",
        "client_id": setup["client"].client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    response = await client.get("/authorize?" + urlencode(query), headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not registered" in response.text


async def test_unknown_client_gets_an_error_page(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/authorize?client_id=nope&response_type=code", headers={"Accept": "text/html"}
    )
    assert response.status_code == 400 and "location" not in response.headers


async def test_prompt_none_without_session(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    query = {
        "response_type": "code",
        "client_id": setup["client"].client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "prompt": "none",
        "scope": "openid",
    }
    response = await client.get("/authorize?" + urlencode(query))
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["login_required"]


async def test_refresh_rotation_and_reuse_revokes_the_family(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    oauth, token, _ = await _code_flow(app, client, setup)
    first_refresh = token["refresh_token"]
    rotated = await oauth.refresh_token(f"{ISSUER}/token", refresh_token=first_refresh)
    assert rotated["refresh_token"] != first_refresh
    auth = (setup["client"].client_id, setup["secret"])
    reuse = await _refresh(client, auth, first_refresh)
    assert reuse.json()["error"] == "invalid_grant"
    # The whole family is gone, including the token issued after the stolen one.
    after = await _refresh(client, auth, rotated["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    result = await client.post("/introspect", data={"token": rotated["access_token"]}, auth=auth)
    assert result.json() == {"active": False}


async def test_refresh_cannot_widen_scope(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, token, _ = await _code_flow(app, client, setup, scope="openid email")
    auth = (setup["client"].client_id, setup["secret"])
    wider = await _refresh(client, auth, token["refresh_token"], scope="openid email profile")
    assert wider.json()["error"] == "invalid_scope"
    narrower = await _refresh(client, auth, token["refresh_token"], scope="openid")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_refresh_id_token_keeps_the_sign_in_and_drops_the_nonce(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], clock: FrozenClock
) -> None:
    # OpenID Connect Core 1.0 section 12.2: same iss, sub, aud, azp and original auth_time;
    # a new iat; no nonce. The access token keeps the sign-in's sid, auth_time and amr too
    # (a session-bound grant: without offline_access, see test_session_tokens.py).
    _, token, nonce = await _code_flow(app, client, setup, scope="openid profile email")
    keys = await _jwks(client)
    first = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert first["nonce"] == nonce
    clock.advance(timedelta(minutes=5))
    auth = (setup["client"].client_id, setup["secret"])
    refreshed = (await _refresh(client, auth, token["refresh_token"])).json()
    assert list(refreshed) == [
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "refresh_token",
        "id_token",
    ]
    again = jwt.decode(refreshed["id_token"], keys, algorithms=["RS256"]).claims
    assert set(again) == set(first) - {"nonce"}
    for name in set(first) - {"nonce", "iat", "exp", "at_hash"}:
        assert again[name] == first[name], name
    assert again["iat"] == first["iat"] + 300
    assert again["at_hash"] == _at_hash(refreshed["access_token"])
    access = jwt.decode(refreshed["access_token"], keys, algorithms=["ES256"]).claims
    assert access["sub"] == first["sub"] and access["sid"] == first["sid"]
    assert access["auth_time"] == first["auth_time"] and access["amr"] == first["amr"]
    assert access["acr"] == first["acr"] == ACR_ONE_FACTOR
    assert access["aud"] == ISSUER and access["iat"] == again["iat"]
    # Without openid in the refreshed scope there is no ID token.
    narrowed = await _refresh(client, auth, refreshed["refresh_token"], scope="email")
    assert narrowed.status_code == 200 and "id_token" not in narrowed.json()
    assert narrowed.json()["scope"] == "email"


async def test_concurrent_refresh_exactly_one_wins(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, token, _ = await _code_flow(app, client, setup)
    auth = (setup["client"].client_id, setup["secret"])
    form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    results = await asyncio.gather(
        *(client.post("/token", data=form, auth=auth) for _ in range(20))
    )
    assert sorted(r.status_code for r in results) == [200] + [400] * 19


async def test_client_credentials(client: httpx.AsyncClient, setup: dict[str, Any]) -> None:
    machine = setup["machine"]
    oauth = AsyncOAuth2Client(
        client_id=machine.client_id,
        client_secret=setup["machine_secret"],
        transport=client._transport,
        base_url=ISSUER,
    )
    token = await oauth.fetch_token(
        f"{ISSUER}/token", grant_type="client_credentials", scope="models:read"
    )
    claims = jwt.decode(token["access_token"], await _jwks(client), algorithms=["ES256"]).claims
    assert claims["sub"] == machine.client_id and claims["scope"] == "models:read"
    assert claims["aud"] == "https://api.example"
    assert "refresh_token" not in token and "id_token" not in token
    denied = await client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(machine.client_id, setup["machine_secret"]),
    )
    assert denied.json()["error"] == "invalid_scope"


async def test_client_authentication_failures(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    machine = setup["machine"]
    wrong = await client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(machine.client_id, "ost_cs_wrong"),
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    post = await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": machine.client_id,
            "client_secret": setup["machine_secret"],
        },
    )
    assert post.status_code == 200  # basic registered; a secret may go either way (2.3.1)
    unknown = await client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "nobody"}
    )
    assert unknown.status_code == 401


async def test_revocation_of_access_and_refresh_tokens(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, token, _ = await _code_flow(app, client, setup)
    auth = (setup["client"].client_id, setup["secret"])
    active = await client.post("/introspect", data={"token": token["access_token"]}, auth=auth)
    assert active.json()["active"] is True
    response = await client.post("/revoke", data={"token": token["access_token"]}, auth=auth)
    assert response.status_code == 200 and response.json() == {}
    assert response.headers["content-type"] == "application/json"
    gone = await client.post("/introspect", data={"token": token["access_token"]}, auth=auth)
    assert gone.json() == {"active": False}
    await client.post("/revoke", data={"token": token["refresh_token"]}, auth=auth)
    refresh = await _refresh(client, auth, token["refresh_token"])
    assert refresh.json()["error"] == "invalid_grant"
    unknown = await client.post("/revoke", data={"token": "nonsense"}, auth=auth)
    assert unknown.status_code == 200


async def test_revoking_the_browser_session_revokes_its_tokens(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    # Session-bound (no offline_access); offline grants survive: test_session_tokens.py
    _, token, _ = await _code_flow(app, client, setup, scope="openid profile email")
    auth = (setup["client"].client_id, setup["secret"])
    page = await client.get("/account")
    sid = page.text.split('data-sid="')[1].split('"')[0]
    await client.post(f"/account/sessions/{sid}/revoke", data={"csrf_token": csrf_from(page.text)})
    for value in (token["access_token"], token["refresh_token"]):
        result = await client.post("/introspect", data={"token": value}, auth=auth)
        assert result.json() == {"active": False}


async def test_consent_is_remembered_and_can_be_withdrawn(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, token, _ = await _code_flow(app, client, setup)
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    url, _ = oauth.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=secrets.token_urlsafe(48)
    )
    again = await client.get(url)
    assert again.status_code == 303 and again.headers["location"].startswith(REDIRECT)
    page = await client.get("/account")
    assert "Notebook" in page.text, page.text[page.text.find("Applications") :]
    client_id = setup["client"].client_id
    response = await client.post(
        f"/account/apps/{client_id}/revoke", data={"csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 303
    auth = (client_id, setup["secret"])
    for value in (token["access_token"], token["refresh_token"]):
        result = await client.post("/introspect", data={"token": value}, auth=auth)
        assert result.json() == {"active": False}
    asked = await client.get(url)
    assert asked.status_code == 200 and "consent-form" in asked.text


async def test_disabled_user_tokens_go_inactive(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    _, token, _ = await _code_flow(app, client, setup)
    async with app.state.runtime.unit() as unit:
        await unit.accounts.disable(EMAIL)
    auth = (setup["client"].client_id, setup["secret"])
    for value in (token["access_token"], token["refresh_token"]):
        result = await client.post("/introspect", data={"token": value}, auth=auth)
        assert result.json() == {"active": False}


async def test_end_session_with_id_token_hint(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    # Session-bound (no offline_access); offline grants survive: test_session_tokens.py
    _, token, _ = await _code_flow(app, client, setup, scope="openid profile email")
    query = urlencode(
        {
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": "https://app.example/bye",
            "state": "z",
        }
    )
    response = await client.get(f"/end_session?{query}")
    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example/bye?state=z"
    assert (await client.get("/account")).status_code == 303
    auth = (setup["client"].client_id, setup["secret"])
    result = await client.post("/introspect", data={"token": token["refresh_token"]}, auth=auth)
    assert result.json() == {"active": False}


async def test_end_session_with_an_unregistered_post_logout_uri_asks_then_signs_out_here(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    """RP-Initiated Logout 1.0 section 3: an unregistered post_logout_redirect_uri is never
    followed. The user is asked (even with a valid id_token_hint: the request is not what the
    client registered), then signed out and shown the signed-out page here."""
    _, token, _ = await _code_flow(app, client, setup)
    evil = "https://evil.example/"
    query = urlencode(
        {"id_token_hint": token["id_token"], "post_logout_redirect_uri": evil, "state": "s"}
    )
    page = await client.get(f"/end_session?{query}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "logout-confirm" in page.text
    assert 'id="not-returned"' in page.text and evil not in page.text
    assert (await client.get("/account")).status_code == 200  # nothing ended before asking
    import html

    form = page.text.split('id="logout-confirm">')[1].split("</form>")[0]
    fields = dict(
        (html.unescape(n), html.unescape(v))
        for n, v in (
            (f.split('name="')[1].split('"')[0], f.split('value="')[1].split('"')[0])
            for f in form.split("<input")[1:]
        )
    )
    fields["post_logout_redirect_uri"] = evil  # put back by hand: still not followed
    done = await client.post("/end_session", data=fields)
    assert done.status_code == 200 and "location" not in done.headers
    assert "You are signed out" in done.text and evil not in done.text
    assert (await client.get("/account")).status_code == 303  # signed out
    auth = (setup["client"].client_id, setup["secret"])
    result = await client.post("/introspect", data={"token": token["access_token"]}, auth=auth)
    assert result.json() == {"active": False}


async def test_prompt_login_asks_a_signed_in_user_again(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], clock: Any
) -> None:
    await _code_flow(app, client, setup)  # signed in, consent given
    from datetime import timedelta

    clock.advance(timedelta(minutes=5))
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    url, _ = oauth.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=secrets.token_urlsafe(48), prompt="login"
    )
    first = await client.get(url)
    assert first.status_code == 303 and first.headers["location"].startswith("/login?")
    login_page = await client.get(first.headers["location"])
    assert login_page.status_code == 200 and "login-form" in login_page.text  # not skipped
    next_path = parse_qs(urlsplit(first.headers["location"]).query)["next"][0]
    signed = await client.post(
        "/login",
        data={
            "email": EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_from(login_page.text),
            "next": next_path,
        },
    )
    back = await client.get(signed.headers["location"])
    assert back.status_code == 303 and back.headers["location"].startswith(REDIRECT)


async def test_max_age_exceeded_requires_sign_in(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], clock: Any
) -> None:
    from datetime import timedelta

    await _code_flow(app, client, setup)
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    url, _ = oauth.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=secrets.token_urlsafe(48), max_age="60"
    )
    fresh = await client.get(url)
    assert fresh.headers["location"].startswith(REDIRECT)  # signed in less than 60 s ago
    clock.advance(timedelta(seconds=61))
    stale = await client.get(url)
    assert stale.headers["location"].startswith("/login?")


async def test_consent_denied_redirects_access_denied(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    oauth = _oauth(app, setup["client"].client_id, setup["secret"])
    url, state = oauth.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=secrets.token_urlsafe(48)
    )
    response = await client.get(url)
    await sign_in(
        client, EMAIL, next_path=parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
    )
    page = await client.get(url)
    import html

    query = html.unescape(page.text.split('name="request" value="')[1].split('"')[0])
    denied = await client.post(
        "/authorize/consent",
        data={"csrf_token": csrf_from(page.text), "request": query, "decision": "deny"},
    )
    params = parse_qs(urlsplit(denied.headers["location"]).query)
    assert params["error"] == ["access_denied"] and params["state"] == [state]


async def test_disabled_by_another_process_goes_inactive_at_once(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    """The CLI is another process with its own connection and its own in-memory state."""
    from ostiary.web.runtime import Runtime

    rt = app.state.runtime
    if rt.external_writes is None:
        pytest.skip("SQLite only: PostgreSQL + Redis replicas learn it over pub/sub")
    _, token, _ = await _code_flow(app, client, setup)
    auth = (setup["client"].client_id, setup["secret"])
    active = await client.post("/introspect", data={"token": token["access_token"]}, auth=auth)
    assert active.json()["active"] is True
    cli = Runtime(rt.settings)
    try:
        async with cli.unit() as unit:
            await unit.accounts.disable(EMAIL)
    finally:
        await cli.close()
    result = await client.post("/introspect", data={"token": token["access_token"]}, auth=auth)
    assert result.json() == {"active": False}
    info = await client.get(
        "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 401


async def test_prompt_select_account_offers_the_session_or_another_account(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    """OIDC Core section 3.1.2.1: select_account. A browser holds one session: the page offers
    to continue with it or to sign in with another account (which is the choice then)."""
    import html

    oauth_discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert "select_account" in oauth_discovery["prompt_values_supported"]
    await _code_flow(app, client, setup)  # signed in as Grace, consent given
    async with app.state.runtime.unit() as unit:
        other = await unit.accounts.create_user("ada@example.com", PASSWORD, name="Ada")
    keys = await _jwks(client)

    async def subject_of(location: str, oauth: AsyncOAuth2Client, verifier: str) -> str:
        assert location.startswith(REDIRECT + "?"), location
        token = await oauth.fetch_token(
            f"{ISSUER}/token", authorization_response=location, code_verifier=verifier
        )
        return str(jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims["sub"])

    def request() -> tuple[AsyncOAuth2Client, str, str]:
        oauth = _oauth(app, setup["client"].client_id, setup["secret"])
        verifier = secrets.token_urlsafe(48)
        url, _ = oauth.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=verifier, prompt="select_account"
        )
        return oauth, verifier, url

    # Continue with the signed-in account.
    oauth, verifier, url = request()
    page = await client.get(url)
    assert page.status_code == 200 and 'id="continue"' in page.text
    assert f'id="account-email">{EMAIL}<' in page.text
    cont = html.unescape(page.text.split('id="continue" href="')[1].split('"')[0])
    chosen = await client.get(cont)
    assert chosen.status_code == 303
    assert await subject_of(chosen.headers["location"], oauth, verifier) == setup["user"].id

    # Or sign in with another account: no second choice page after that sign-in.
    oauth, verifier, url = request()
    page = await client.get(url)
    switch = html.unescape(page.text.split('id="switch" href="')[1].split('"')[0])
    assert switch.startswith("/login?")
    login_page = await client.get(switch)
    assert "login-form" in login_page.text
    signed = await client.post(
        "/login",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_from(login_page.text),
            "next": parse_qs(urlsplit(switch).query)["next"][0],
        },
    )
    back = await client.get(signed.headers["location"])
    if back.status_code == 200 and "consent-form" in back.text:  # Ada has not approved yet
        query = back.text.split('name="request" value="')[1].split('"')[0]
        back = await client.post(
            "/authorize/consent",
            data={
                "csrf_token": csrf_from(back.text),
                "request": html.unescape(query),
                "decision": "allow",
            },
        )
    assert back.status_code == 303
    assert await subject_of(back.headers["location"], oauth, verifier) == other.id


async def test_a_withdrawn_signing_key_ends_its_tokens_even_once_verified(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], clock: FrozenClock
) -> None:
    """Introspection remembers verified signatures (features/oauth/verified.py) only for the
    key set that verified them: an operator removing a compromised key ends its tokens."""
    from sqlalchemy import delete

    from ostiary.storage.sqla.tables import signing_keys

    auth = (setup["machine"].client_id, setup["machine_secret"])
    issued = await client.post(
        "/token", data={"grant_type": "client_credentials", "scope": "models:read"}, auth=auth
    )
    value = issued.json()["access_token"]
    for _ in range(2):  # verified, then remembered
        result = await client.post("/introspect", data={"token": value}, auth=auth)
        assert result.json()["active"] is True
    kid = jwt.decode(value, await _jwks(client), algorithms=["ES256"]).header["kid"]
    rt = app.state.runtime
    async with rt.unit() as unit:
        await unit.keys.rotate("ES256")
        await unit.conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid))
    clock.advance(timedelta(seconds=10))  # past the key list's cache
    result = await client.post("/introspect", data={"token": value}, auth=auth)
    assert result.json() == {"active": False}
