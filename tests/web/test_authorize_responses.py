"""How /authorize answers (in-process; requests built by Authlib, pages parsed by html.parser).

- OAuth 2.0 Form Post Response Mode section 2: ``response_mode=form_post`` answers, success
  and error alike, with an auto-submitting form POSTed to the redirect URI (``code``,
  ``state``, ``iss`` per RFC 9207); the page's CSP allows that script and that form only; the
  mode survives the sign-in and consent round trips; an unknown mode is an error.
- RFC 6749 section 4.1.2.1 / 3.1: a repeated or over-long parameter is an ``invalid_request``
  error redirect when the client and redirect URI are good, an error page (never a redirect)
  when ``client_id`` or ``redirect_uri`` is itself the bad one.
- Failed requests are logged (``oauth_error`` with the hint and client id) and audited.
- OpenID Connect Core 3.1.2.1 / 3.1.2.6: a ``login_hint`` naming another user than the
  signed-in one asks to switch accounts; with ``prompt=none`` it is ``login_required``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from structlog.testing import capture_logs

from ostiary.features.clients.service import ClientRegistration
from ostiary.storage.sqla.tables import audit_events
from tests.web.helpers import PASSWORD, csrf_from

ISSUER = "http://testserver"
REDIRECT = "https://app.example/callback"
GRACE = "grace@example.com"
ADA = "ada@example.com"
ALGS = ["ES256", "RS256", "EdDSA"]


@dataclass
class Setup:
    app: Any
    client_id: str
    secret: str
    grace: str
    ada: str


@pytest.fixture
async def setup(app: Any) -> Setup:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        grace = await unit.accounts.create_user(GRACE, PASSWORD, name="Grace")
        ada = await unit.accounts.create_user(ADA, PASSWORD, name="Ada")
        client, secret = await unit.clients.register(
            ClientRegistration(name="Notebook", redirect_uris=(REDIRECT,))
        )
    return Setup(app, client.client_id, secret, grace.id, ada.id)


def _browser(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


def _oauth(setup: Setup) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=setup.client_id,
        client_secret=setup.secret,
        redirect_uri=REDIRECT,
        scope="openid profile email",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=setup.app),
        base_url=ISSUER,
    )


def _url(setup: Setup, **extra: str) -> tuple[str, str, str]:
    """A new authorization request from Authlib: (url, code_verifier, state)."""
    verifier = secrets.token_urlsafe(48)
    url, state = _oauth(setup).create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=verifier, nonce=secrets.token_urlsafe(8), **extra
    )
    return url, verifier, state


class _Page(HTMLParser):
    """The forms (action, method, fields), the links and the inline scripts of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: dict[str, str] = {}
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "fields": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"].append((a.get("name"), a.get("value", "")))
        elif tag == "a" and "id" in a:
            self.links[a["id"]] = a.get("href", "")
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def _csp(response: httpx.Response) -> dict[str, str]:
    directives = (
        d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";")
    )
    return {d[0]: (d[1] if len(d) > 1 else "") for d in directives if d and d[0]}


def _form_post(response: httpx.Response) -> dict[str, str]:
    """The fields of a form_post response, after checking it is one, CSP and caching included."""
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert "location" not in response.headers
    page = _Page(response.text)
    assert len(page.forms) == 1, page.forms
    form = page.forms[0]
    assert form["action"] == REDIRECT and form["method"] == "post", form
    names = [name for name, _ in form["fields"]]
    assert len(names) == len(set(names)), names
    assert response.headers["cache-control"] == "no-store"
    csp = _csp(response)
    assert csp["default-src"] == "'none'"
    assert csp["form-action"] == "https://app.example"
    assert csp["frame-ancestors"] == "'none'"
    [script] = page.scripts  # the one script, allowed by its hash and nothing else
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert csp["script-src"] == f"'sha256-{digest}'"
    assert "submit()" in script
    return dict(form["fields"])


async def _sign_in(browser: httpx.AsyncClient, email: str, login_location: str) -> str:
    """Fill in the sign-in form we were sent to; returns where it sends us."""
    assert login_location.startswith("/login?"), login_location
    page = await browser.get(login_location)
    assert "login-form" in page.text
    signed = await browser.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
            "next": parse_qs(urlsplit(login_location).query)["next"][0],
        },
    )
    assert signed.status_code == 303, signed.text[:300]
    return signed.headers["location"]


async def _allow_if_asked(browser: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    if response.status_code == 200 and "consent-form" in response.text:
        query = html.unescape(response.text.split('name="request" value="')[1].split('"')[0])
        response = await browser.post(
            "/authorize/consent",
            data={"csrf_token": csrf_from(response.text), "request": query, "decision": "allow"},
        )
    return response


async def _signed_in_with_consent(browser: httpx.AsyncClient, setup: Setup, email: str) -> None:
    url, _, _ = _url(setup)
    response = await browser.get(url)
    response = await browser.get(await _sign_in(browser, email, response.headers["location"]))
    response = await _allow_if_asked(browser, response)
    assert response.status_code == 303 and response.headers["location"].startswith(REDIRECT)


async def _subject(setup: Setup, code: str, verifier: str) -> str:
    """Redeem the code with Authlib; the ID token's ``sub``, verified with joserfc."""
    token = await _oauth(setup).fetch_token(f"{ISSUER}/token", code=code, code_verifier=verifier)
    async with _browser(setup.app) as b:
        keys = KeySet.import_key_set((await b.get("/.well-known/jwks.json")).json())
    return str(jwt.decode(token["id_token"], keys, algorithms=ALGS).claims["sub"])


def _query_of(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return parse_qs(urlsplit(location).query)


# -- response_mode=form_post ---------------------------------------------------------------


async def test_discovery_lists_form_post(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        doc = (await browser.get("/.well-known/openid-configuration")).json()
    assert doc["response_modes_supported"] == ["query", "form_post"]


async def test_form_post_delivers_the_code_in_an_auto_submitting_form(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, verifier, state = _url(setup, response_mode="form_post")
        fields = _form_post(await browser.get(url))
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == state and fields["iss"] == ISSUER
    assert await _subject(setup, fields["code"], verifier) == setup.grace


async def test_form_post_survives_sign_in_and_consent(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        url, verifier, state = _url(setup, response_mode="form_post")
        back = await _sign_in(browser, GRACE, (await browser.get(url)).headers["location"])
        consent = await browser.get(back)
        assert consent.status_code == 200 and "consent-form" in consent.text
        fields = _form_post(await _allow_if_asked(browser, consent))
    assert fields["state"] == state
    assert await _subject(setup, fields["code"], verifier) == setup.grace


async def test_form_post_delivers_errors_too(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        url, _, state = _url(setup, response_mode="form_post", prompt="none")
        fields = _form_post(await browser.get(url))  # not signed in
        assert fields == {
            "error": "login_required",
            "error_description": fields["error_description"],
            "state": state,
            "iss": ISSUER,
        }
        url, _, state = _url(setup, response_mode="form_post", response_type="token")
        fields = _form_post(await browser.get(url))  # a validation error
        assert fields["error"] == "unsupported_response_type" and fields["state"] == state
        # The user's own "deny" on the consent page, too.
        plain = await browser.get(_url(setup)[0])
        await _sign_in(browser, GRACE, plain.headers["location"])  # signed in, no consent yet
        url, _, state = _url(setup, response_mode="form_post")
        consent = await browser.get(url)
        query = html.unescape(consent.text.split('name="request" value="')[1].split('"')[0])
        denied = await browser.post(
            "/authorize/consent",
            data={"csrf_token": csrf_from(consent.text), "request": query, "decision": "deny"},
        )
        fields = _form_post(denied)
        assert fields["error"] == "access_denied" and fields["state"] == state


@pytest.mark.parametrize("mode", ["fragment", "web_message", "form_post.jwt"])
async def test_an_unknown_response_mode_is_an_error_in_the_query(setup: Setup, mode: str) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, _, state = _url(setup, response_mode=mode)
        query = _query_of(await browser.get(url))
    assert query["error"] == ["invalid_request"] and query["state"] == [state]
    assert "code" not in query


# -- repeated and over-long parameters -----------------------------------------------------


def _with(url: str, *pairs: tuple[str, str]) -> str:
    return f"{url}&{urlencode(pairs)}"


@pytest.mark.parametrize(
    ("extra", "state_echoed"),
    [
        ((("scope", "openid"),), True),
        ((("nonce", "again"),), True),
        ((("prompt", "login"),), True),
        ((("state", "other"),), False),
        ((("code_challenge", "A" * 43),), True),
    ],
    ids=["scope", "nonce", "prompt-twice", "state", "code_challenge"],
)
async def test_a_repeated_parameter_is_an_error_redirect(
    setup: Setup, extra: tuple[tuple[str, str], ...], state_echoed: bool
) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, _, state = _url(setup, prompt="consent") if extra[0][0] == "prompt" else _url(setup)
        query = _query_of(await browser.get(_with(url, *extra)))
    assert query["error"] == ["invalid_request"] and "code" not in query
    assert query["iss"] == [ISSUER]
    assert query.get("state") == ([state] if state_echoed else None)
    assert extra[0][0] in query["error_description"][0]


@pytest.mark.parametrize(
    ("name", "state_echoed"), [("nonce", True), ("login_hint", True), ("state", False)]
)
async def test_an_over_long_parameter_is_an_error_redirect(
    setup: Setup, name: str, state_echoed: bool
) -> None:
    async with _browser(setup.app) as browser:
        url, _, state = _url(setup)
        parts = dict(parse_qs(urlsplit(url).query))
        parts[name] = ["x" * 2049]
        long_url = f"{ISSUER}/authorize?{urlencode(parts, doseq=True)}"
        query = _query_of(await browser.get(long_url))
        post = await browser.post(
            "/authorize",
            content=urlsplit(long_url).query.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert query["error"] == ["invalid_request"] and name in query["error_description"][0]
    assert query.get("state") == ([state] if state_echoed else None)
    assert _query_of(post)["error"] == ["invalid_request"]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda q: q + "&client_id=" + q.split("client_id=")[1].split("&")[0],
            id="client_id-repeated",
        ),
        pytest.param(
            lambda q: q + "&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback",
            id="redirect_uri-repeated",
        ),
        pytest.param(
            lambda q: q.replace("redirect_uri=", "redirect_uri=" + "x" * 2049),
            id="redirect_uri-too-long",
        ),
        pytest.param(
            lambda q: q.replace("client_id=", "client_id=" + "x" * 2049), id="client_id-too-long"
        ),
        pytest.param(
            lambda q: q.replace("client_id=", "client_id=nobody") + "&scope=x",
            id="unknown-client-and-scope-repeated",
        ),
    ],
)
async def test_a_bad_client_id_or_redirect_uri_is_an_error_page_never_a_redirect(
    setup: Setup, mutate: Any
) -> None:
    async with _browser(setup.app) as browser:
        url, _, _ = _url(setup)
        response = await browser.get(
            f"{ISSUER}/authorize?{mutate(urlsplit(url).query)}", headers={"Accept": "text/html"}
        )
    assert response.status_code == 400 and "location" not in response.headers
    assert "text/html" in response.headers["content-type"]


# -- failures are logged and audited -------------------------------------------------------


async def _audit(setup: Setup) -> list[Any]:
    async with setup.app.state.runtime.engine.connect() as conn:
        query = select(audit_events).where(audit_events.c.action == "authorize")
        return list((await conn.execute(query.order_by(audit_events.c.seq))).mappings())


async def test_a_failed_request_is_logged_with_its_hint_and_audited(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        url, _, _ = _url(setup, response_type="token")
        with capture_logs() as logs:
            redirected = await browser.get(url)
            shown = await browser.get(url.replace(setup.client_id, "ost_nobody"))
    assert _query_of(redirected)["error"] == ["unsupported_response_type"]
    assert shown.status_code == 400
    errors = [e for e in logs if e["event"] == "oauth_error"]
    assert [(e["endpoint"], e["error"], e["client_id"]) for e in errors] == [
        ("/authorize", "unsupported_response_type", setup.client_id),
        ("/authorize", "invalid_request", "ost_nobody"),
    ]
    assert "response_type" in errors[0]["hint"] and "Unknown client" in errors[1]["hint"]
    rows = await _audit(setup)
    assert [(r["outcome"], r["target"], r["ip"], r["details"]["error"]) for r in rows] == [
        ("failure", setup.client_id, "203.0.113.9", "unsupported_response_type"),
        ("failure", "ost_nobody", "203.0.113.9", "invalid_request"),
    ]
    assert "Unknown client" in rows[1]["details"]["reason"]


async def test_a_malformed_request_is_audited_without_a_client(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        response = await browser.get("/authorize?client_id=a%00b", headers={"Accept": "text/html"})
    assert response.status_code == 400 and "Malformed" in response.text
    [row] = await _audit(setup)
    assert row["target"] is None and row["details"]["error"] == "invalid_request"


# -- login_hint naming another user --------------------------------------------------------


async def test_a_login_hint_for_another_user_asks_to_switch(setup: Setup) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, verifier, _ = _url(setup, login_hint=ADA)
        page = await browser.get(url)
        assert page.status_code == 200 and 'id="continue"' in page.text  # no code for Grace
        assert f'id="account-email">{GRACE}<' in page.text
        switch = _Page(page.text).links["switch"]
        assert parse_qs(urlsplit(switch).query)["login_hint"] == [ADA]
        login = await browser.get(switch)
        assert f'value="{ADA}"' in login.text  # the sign-in form, prefilled with the hint
        back = await _sign_in(browser, ADA, switch)
        response = await _allow_if_asked(browser, await browser.get(back))
        code = _query_of(response)["code"][0]
        assert await _subject(setup, code, verifier) == setup.ada


async def test_a_login_hint_for_another_user_may_continue_as_the_signed_in_one(
    setup: Setup,
) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, verifier, _ = _url(setup, login_hint=ADA)
        cont = _Page((await browser.get(url)).text).links["continue"]
        code = _query_of(await browser.get(cont))["code"][0]
        assert await _subject(setup, code, verifier) == setup.grace


@pytest.mark.parametrize("hint", [GRACE, " Grace@Example.COM ", "subject"])
async def test_a_login_hint_for_the_signed_in_user_issues_at_once(setup: Setup, hint: str) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, _, _ = _url(setup, login_hint=setup.grace if hint == "subject" else hint)
        assert "code" in _query_of(await browser.get(url))


async def test_a_login_hint_for_another_user_with_prompt_none_is_login_required(
    setup: Setup,
) -> None:
    async with _browser(setup.app) as browser:
        await _signed_in_with_consent(browser, setup, GRACE)
        url, _, state = _url(setup, login_hint=ADA, prompt="none")
        query = _query_of(await browser.get(url))
    assert query["error"] == ["login_required"] and query["state"] == [state]
    assert "code" not in query


@pytest.mark.parametrize("redirect", ["com.example.app:/callback", "http://[::1]:8765/callback"])
async def test_form_post_to_a_uri_a_form_cannot_reach_is_an_error_in_the_query(
    setup: Setup, redirect: str
) -> None:
    """A private-use scheme cannot take a POST; a CSP form-action cannot name an IPv6 host."""
    async with setup.app.state.runtime.unit() as unit:
        native, _ = await unit.clients.register(
            ClientRegistration(name="Native", redirect_uris=(redirect,), public=True)
        )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": native.client_id,
            "redirect_uri": redirect,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "s1",
            "response_mode": "form_post",
        }
    )
    async with _browser(setup.app) as browser:
        response = await browser.get(f"/authorize?{query}")
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(redirect + "?"), location
    params = parse_qs(urlsplit(location).query)
    assert params["error"] == ["invalid_request"] and params["state"] == ["s1"]
