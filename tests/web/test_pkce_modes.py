"""PKCE modes through /authorize and /token (RFC 9700 section 2.1.1, RFC 7636 section 4.6) and
``redirect_uri`` at /token (RFC 6749 section 4.1.3), in-process over HTTP."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import update

from ostiary.features.clients.service import ClientRegistration
from ostiary.protocol.pkce import s256_challenge
from ostiary.storage.sqla.tables import clients
from tests.web.helpers import PASSWORD, sign_in

EMAIL = "ada@example.com"
CB = "https://app.example/cb"


@pytest.fixture(autouse=True)
async def _user_and_key(app: Any) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        await unit.accounts.create_user(EMAIL, PASSWORD, email_verified=True)


async def _register(app: Any, **kw: Any) -> tuple[str, str | None]:
    async with app.state.runtime.unit() as unit:
        client, secret = await unit.clients.register(
            ClientRegistration(name="App", redirect_uris=(CB,), first_party=True, **kw)
        )
    return client.client_id, secret


async def _authorize(browser: httpx.AsyncClient, params: dict[str, str]) -> dict[str, list[str]]:
    """Sign in if asked; the query of the redirect back to the client."""
    url = "/authorize?" + urlencode({"response_type": "code", "state": "s", **params})
    response = await browser.get(url)
    if response.headers.get("location", "").startswith("/login"):
        await sign_in(browser, EMAIL, next_path=url)
        response = await browser.get(url)
    assert response.status_code == 303, response.text
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CB
    return parse_qs(target.query)


async def _token(
    browser: httpx.AsyncClient, client_id: str, secret: str | None, **form: str
) -> httpx.Response:
    auth = (client_id, secret) if secret else None
    data = {"grant_type": "authorization_code", **form}
    if secret is None:
        data["client_id"] = client_id
    return await browser.post("/token", data=data, auth=auth)  # type: ignore[arg-type]


async def test_nonce_mode_code_without_pkce_is_redeemed_without_a_verifier(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, secret = await _register(app)  # confidential: "nonce" by default
    got = await _authorize(
        client, {"client_id": client_id, "redirect_uri": CB, "scope": "openid", "nonce": "n1"}
    )
    response = await _token(client, client_id, secret, code=got["code"][0], redirect_uri=CB)
    assert response.status_code == 200, response.text
    assert "id_token" in response.json()


async def test_nonce_mode_refuses_openid_without_nonce_with_an_error_redirect(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, _ = await _register(app)
    got = await _authorize(client, {"client_id": client_id, "redirect_uri": CB, "scope": "openid"})
    assert got["error"] == ["invalid_request"] and got["state"] == ["s"]
    assert "nonce" in got["error_description"][0] and "code" not in got


async def test_a_verifier_for_a_code_issued_without_a_challenge_is_refused(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, secret = await _register(app)
    got = await _authorize(
        client, {"client_id": client_id, "redirect_uri": CB, "scope": "openid", "nonce": "n1"}
    )
    code = got["code"][0]
    for verifier in ("x" * 43, ""):  # RFC 9700 section 2.1.1: no verifier without a challenge
        refused = await _token(
            client, client_id, secret, code=code, redirect_uri=CB, code_verifier=verifier
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert (await _token(client, client_id, secret, code=code, redirect_uri=CB)).status_code == 200


@pytest.mark.parametrize("mode", ["required", "nonce", "optional"])
async def test_a_code_issued_with_a_challenge_needs_its_verifier(
    app: Any, client: httpx.AsyncClient, mode: str
) -> None:
    client_id, secret = await _register(app, pkce=mode)
    verifier = secrets.token_urlsafe(48)
    got = await _authorize(
        client,
        {
            "client_id": client_id,
            "redirect_uri": CB,
            "scope": "openid",
            "nonce": "n1",
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        },
    )
    code = got["code"][0]
    missing = await _token(client, client_id, secret, code=code, redirect_uri=CB)
    assert missing.json()["error"] == "invalid_request"  # no downgrade to the nonce
    wrong = await _token(
        client, client_id, secret, code=code, redirect_uri=CB, code_verifier="y" * 43
    )
    assert wrong.json()["error"] == "invalid_grant"
    good = await _token(
        client, client_id, secret, code=code, redirect_uri=CB, code_verifier=verifier
    )
    assert good.status_code == 200


async def test_optional_mode_allows_plain_oauth_without_pkce(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, secret = await _register(app, pkce="optional", scopes=("openid", "api"))
    got = await _authorize(client, {"client_id": client_id, "redirect_uri": CB, "scope": "api"})
    response = await _token(client, client_id, secret, code=got["code"][0], redirect_uri=CB)
    assert response.status_code == 200 and "id_token" not in response.json()


async def test_required_mode_refuses_an_openid_request_with_a_nonce(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, _ = await _register(app, pkce="required")
    got = await _authorize(
        client, {"client_id": client_id, "redirect_uri": CB, "scope": "openid", "nonce": "n1"}
    )
    assert got["error"] == ["invalid_request"] and "code" not in got


async def test_a_public_client_never_gets_a_code_without_pkce(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, _ = await _register(app, public=True)
    async with app.state.runtime.unit() as unit:  # a row that somehow says "optional"
        await unit.conn.execute(
            update(clients).where(clients.c.client_id == client_id).values(pkce="optional")
        )
    app.state.runtime.clients_cache.clear()
    for params in ({"scope": "openid", "nonce": "n1"}, {"scope": "openid"}):
        got = await _authorize(client, {"client_id": client_id, "redirect_uri": CB, **params})
        assert got["error"] == ["invalid_request"] and "code" not in got


async def test_redirect_uri_sent_at_authorize_is_required_at_token(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, secret = await _register(app)
    got = await _authorize(
        client, {"client_id": client_id, "redirect_uri": CB, "scope": "openid", "nonce": "n1"}
    )
    code = got["code"][0]
    missing = await _token(client, client_id, secret, code=code)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    other = await _token(client, client_id, secret, code=code, redirect_uri=CB + "x")
    assert other.json()["error"] == "invalid_grant"
    assert (await _token(client, client_id, secret, code=code, redirect_uri=CB)).status_code == 200


async def test_redirect_uri_omitted_at_authorize_may_be_omitted_at_token(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, secret = await _register(app, scopes=("api",))
    verifier = secrets.token_urlsafe(48)
    pkce = {"code_challenge": s256_challenge(verifier), "code_challenge_method": "S256"}
    got = await _authorize(client, {"client_id": client_id, "scope": "api", **pkce})
    response = await _token(client, client_id, secret, code=got["code"][0], code_verifier=verifier)
    assert response.status_code == 200, response.text
    # ...and if given there anyway, it must still be the registered one used.
    got = await _authorize(client, {"client_id": client_id, "scope": "api", **pkce})
    wrong = await _token(
        client, client_id, secret, code=got["code"][0], code_verifier=verifier, redirect_uri="x"
    )
    assert wrong.json()["error"] == "invalid_grant"


async def test_an_openid_request_without_redirect_uri_gets_an_error_page(
    app: Any, client: httpx.AsyncClient
) -> None:
    client_id, _ = await _register(app)
    query = urlencode(
        {"response_type": "code", "client_id": client_id, "scope": "openid", "nonce": "n1"}
    )
    response = await client.get("/authorize?" + query, headers={"Accept": "text/html"})
    assert response.status_code == 400 and "location" not in response.headers
    assert "redirect_uri is required" in response.text
