"""The sign-in demands of an authorization request cannot be skipped (in-process).

OpenID Connect Core 1.0 section 3.1.2.1 (``prompt=login``, ``max_age``,
``prompt=select_account``, ``id_token_hint``), section 3.1.2.6 (``login_required``) and
RFC 8707 section 2 (``resource`` may repeat). The markers that stop the sign-in loop are the
server's signed state (web/sign_in_proofs.py): forged, copied to another request, another
client, another browser or session, or replayed later, they must not yield a code; the
consent POST checks the demands again. Authorization URLs are built by Authlib.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
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
from ostiary.web.sign_in_proofs import PROOF_TTL_SECONDS
from tests.web.helpers import PASSWORD, csrf_from

ISSUER = "http://testserver"
REDIRECT = "https://app.example/callback"
GRACE = "grace@example.com"
ADA = "ada@example.com"
API_A = "https://api-a.example"
API_B = "https://api-b.example"
MARKER = "_ost_auth_after"
CHOSEN = "_ost_account_chosen"


@dataclass
class Setup:
    app: Any
    client_id: str
    secret: str
    other_id: str
    other_secret: str
    grace: str
    ada: str


@pytest.fixture
async def setup(app: Any) -> Setup:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        grace = await unit.accounts.create_user(GRACE, PASSWORD, name="Grace")
        ada = await unit.accounts.create_user(ADA, PASSWORD, name="Ada")
        web, secret = await unit.clients.register(
            ClientRegistration(name="Notebook", redirect_uris=(REDIRECT,), resources=(API_A, API_B))
        )
        other, other_secret = await unit.clients.register(
            ClientRegistration(name="Other", redirect_uris=(REDIRECT,))
        )
    return Setup(app, web.client_id, secret, other.client_id, other_secret, grace.id, ada.id)


def _browser(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


def _oauth(setup: Setup, *, other: bool = False) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=setup.other_id if other else setup.client_id,
        client_secret=setup.other_secret if other else setup.secret,
        redirect_uri=REDIRECT,
        scope="openid profile email",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=setup.app),
        base_url=ISSUER,
    )


def _url(setup: Setup, *, other: bool = False, **extra: str) -> tuple[str, str]:
    """A new authorization request from Authlib: (url, code_verifier)."""
    verifier = secrets.token_urlsafe(48)
    url, _ = _oauth(setup, other=other).create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=verifier, nonce=secrets.token_urlsafe(8), **extra
    )
    return url, verifier


def _location(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:500])
    return response.headers["location"]


def _next_of(login_location: str) -> str:
    assert login_location.startswith("/login?"), login_location
    return parse_qs(urlsplit(login_location).query)["next"][0]


def _is_code(response: httpx.Response) -> bool:
    return response.status_code == 303 and "code" in parse_qs(
        urlsplit(response.headers["location"]).query
    )


def _sent_to_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login?")


async def _sign_in(browser: httpx.AsyncClient, email: str, login_location: str) -> str:
    """Fill in the sign-in form we were sent to; returns where it sends us (``next``)."""
    page = await browser.get(login_location)
    assert page.status_code == 200 and "login-form" in page.text, page.status_code
    signed = await browser.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
            "next": _next_of(login_location),
        },
    )
    return _location(signed)


async def _allow_if_asked(browser: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    if response.status_code == 200 and "consent-form" in response.text:
        query = html.unescape(response.text.split('name="request" value="')[1].split('"')[0])
        response = await browser.post(
            "/authorize/consent",
            data={"csrf_token": csrf_from(response.text), "request": query, "decision": "allow"},
        )
    return response


async def _flow(
    browser: httpx.AsyncClient, setup: Setup, email: str, *, other: bool = False, **extra: str
) -> str:
    """An honest code flow (sign-in and consent when asked); returns the callback URL."""
    url, _ = _url(setup, other=other, **extra)
    response = await browser.get(url)
    if _sent_to_login(response):
        response = await browser.get(await _sign_in(browser, email, _location(response)))
    response = await _allow_if_asked(browser, response)
    assert _is_code(response), (response.status_code, response.headers, response.text[:300])
    return _location(response)


async def _subject(setup: Setup, url: str, verifier: str, callback: str) -> str:
    """Redeem the code with Authlib; the ID token's ``sub``, verified with joserfc."""
    oauth = _oauth(setup)
    token = await oauth.fetch_token(
        f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
    )
    async with _browser(setup.app) as b:
        keys = KeySet.import_key_set((await b.get("/.well-known/jwks.json")).json())
    return str(jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims["sub"])


# -- item 4: the markers are the server's, not the client's -------------------------------


@pytest.mark.parametrize("demand", [{"prompt": "login"}, {"max_age": "0"}])
async def test_a_forged_sign_in_marker_does_not_skip_the_sign_in(
    setup: Setup, clock: FrozenClock, demand: dict[str, str]
) -> None:
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)  # signed in, consent given
        clock.advance(timedelta(minutes=5))
        url, _ = _url(setup, **demand)
        for forged in ("0", "1", str(int(clock.now().timestamp()) - 600)):
            response = await browser.get(f"{url}&{MARKER}={forged}")
            assert _sent_to_login(response), forged
            assert "reauth=1" in response.headers["location"]


async def test_a_forged_choice_marker_does_not_skip_select_account(
    setup: Setup, clock: FrozenClock
) -> None:
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        url, _ = _url(setup, prompt="select_account")
        response = await browser.get(f"{url}&{CHOSEN}=1")
        assert response.status_code == 200 and 'id="continue"' in response.text


async def test_a_sign_in_marker_needs_a_new_sign_in_even_within_the_same_second(
    setup: Setup, clock: FrozenClock
) -> None:
    """Sent to sign in, the browser comes straight back without signing in (clock unmoved)."""
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        url, _ = _url(setup, prompt="login")
        back = _next_of(_location(await browser.get(url)))
        assert _sent_to_login(await browser.get(back))


async def test_a_sign_in_marker_copied_to_another_request_or_client_is_refused(
    setup: Setup, clock: FrozenClock
) -> None:
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        await _flow(browser, setup, GRACE, other=True)  # consent for the other client too
        clock.advance(timedelta(minutes=5))
        url, _ = _url(setup, prompt="login")
        back = await _sign_in(browser, GRACE, _location(await browser.get(url)))
        marker = parse_qs(urlsplit(back).query)[MARKER][0]
        assert _is_code(await browser.get(back))  # the honest round trip works
        for other in (_url(setup, prompt="login")[0], _url(setup, other=True, prompt="login")[0]):
            response = await browser.get(f"{other}&{urlencode({MARKER: marker})}")
            assert _sent_to_login(response)


async def test_a_sign_in_marker_from_another_browser_is_refused(
    setup: Setup, clock: FrozenClock
) -> None:
    """Grace's browser was sent to sign in; Ada's browser signs in later and uses Grace's
    return URL: it proves nothing about Ada's browser."""
    async with _browser(setup.app) as grace, _browser(setup.app) as ada:
        await _flow(grace, setup, GRACE)
        clock.advance(timedelta(minutes=5))
        url, _ = _url(setup, prompt="login")
        back = _next_of(_location(await grace.get(url)))
        assert MARKER in back
        clock.advance(timedelta(seconds=5))
        await _flow(ada, setup, ADA)  # signed in after the marker was made
        assert _sent_to_login(await ada.get(back))


async def test_a_sign_in_marker_replayed_later_is_refused(setup: Setup, clock: FrozenClock) -> None:
    async with _browser(setup.app) as browser:
        url, _ = _url(setup, prompt="login")
        back = await _sign_in(browser, GRACE, _location(await browser.get(url)))
        assert _is_code(await _allow_if_asked(browser, await browser.get(back)))
        clock.advance(timedelta(seconds=PROOF_TTL_SECONDS + 1))
        assert _sent_to_login(await browser.get(back))


async def test_a_choice_marker_of_another_session_is_refused(
    setup: Setup, clock: FrozenClock
) -> None:
    async with _browser(setup.app) as grace, _browser(setup.app) as ada:
        await _flow(grace, setup, GRACE)
        await _flow(ada, setup, ADA)
        url, verifier = _url(setup, prompt="select_account")
        page = await grace.get(url)
        cont = html.unescape(page.text.split('id="continue" href="')[1].split('"')[0])
        assert CHOSEN in cont
        again = await ada.get(cont)
        assert again.status_code == 200 and 'id="continue"' in again.text  # asked, no code
        chosen = await grace.get(cont)
        assert await _subject(setup, url, verifier, _location(chosen)) == setup.grace
        clock.advance(timedelta(seconds=PROOF_TTL_SECONDS + 1))
        assert 'id="continue"' in (await grace.get(cont)).text  # replayed later: asked again


@pytest.mark.parametrize(
    "demand", [{"prompt": "login"}, {"max_age": "0"}, {"prompt": "select_account"}]
)
async def test_the_consent_post_checks_the_sign_in_demands_again(
    setup: Setup, clock: FrozenClock, demand: dict[str, str]
) -> None:
    """OIDC Core 3.1.2.1: skipping /authorize and posting the consent form straight away
    (or with a forged marker) gives no code."""
    async with _browser(setup.app) as browser:
        url, _ = _url(setup)
        await _sign_in(browser, GRACE, _location(await browser.get(url)))  # no consent yet
        clock.advance(timedelta(minutes=5))
        token = csrf_from((await browser.get("/account")).text)
        url, _ = _url(setup, **demand)
        query = urlsplit(url).query
        for request in (query, f"{query}&{MARKER}=0", f"{query}&{CHOSEN}=1"):
            response = await browser.post(
                "/authorize/consent",
                data={"csrf_token": token, "request": request, "decision": "allow"},
            )
            assert not _is_code(response), request
            if demand.get("prompt") == "select_account":
                assert response.status_code == 200 and 'id="continue"' in response.text
            else:
                assert _sent_to_login(response)


@pytest.mark.parametrize(
    "demand", [{"prompt": "login"}, {"max_age": "0"}, {"prompt": "select_account"}]
)
async def test_one_sign_in_meets_the_demand_when_signed_out(
    setup: Setup, clock: FrozenClock, demand: dict[str, str]
) -> None:
    """The loop-stopper still stops the loop: signed out, one sign-in (then consent) and
    the code, also through the consent form."""
    async with _browser(setup.app) as browser:
        url, verifier = _url(setup, **demand)
        back = await _sign_in(browser, GRACE, _location(await browser.get(url)))
        clock.advance(timedelta(seconds=3))  # max_age=0: the sign-in is already 3 s old
        response = await browser.get(back)
        assert response.status_code == 200 and "consent-form" in response.text
        callback = _location(await _allow_if_asked(browser, response))
        assert await _subject(setup, url, verifier, callback) == setup.grace


async def test_prompt_login_when_signed_in_asks_once_and_issues_for_the_new_sign_in(
    setup: Setup, clock: FrozenClock
) -> None:
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        clock.advance(timedelta(minutes=5))
        url, verifier = _url(setup, prompt="login")
        login = _location(await browser.get(url))
        assert "reauth=1" in login
        back = await _sign_in(browser, GRACE, login)
        callback = _location(await browser.get(back))
        assert await _subject(setup, url, verifier, callback) == setup.grace


# -- item 7: id_token_hint ------------------------------------------------------------------


async def _id_token(setup: Setup, email: str, *, other: bool = False) -> str:
    async with _browser(setup.app) as browser:
        url, verifier = _url(setup, other=other)
        response = await browser.get(url)
        response = await browser.get(await _sign_in(browser, email, _location(response)))
        callback = _location(await _allow_if_asked(browser, response))
    token = await _oauth(setup, other=other).fetch_token(
        f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
    )
    return str(token["id_token"])


def _error_of(response: httpx.Response) -> str:
    query = parse_qs(urlsplit(_location(response)).query)
    assert _location(response).startswith(REDIRECT + "?")
    return query["error"][0]


async def test_prompt_none_with_a_hint_for_another_user_is_login_required(
    setup: Setup, clock: FrozenClock
) -> None:
    ada_token = await _id_token(setup, ADA)
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        url, _ = _url(setup, prompt="none", id_token_hint=ada_token)
        assert _error_of(await browser.get(url)) == "login_required"


async def test_prompt_none_with_an_expired_hint_for_the_signed_in_user_issues(
    setup: Setup, clock: FrozenClock
) -> None:
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        hint = await _id_token(setup, GRACE)
        ttl = setup.app.state.runtime.settings.tokens.id_token_ttl
        clock.advance(ttl + timedelta(minutes=1))  # expired, still a genuine one of ours
        url, verifier = _url(setup, prompt="none", id_token_hint=hint)
        response = await browser.get(url)
        assert _is_code(response)
        assert await _subject(setup, url, verifier, _location(response)) == setup.grace


async def test_a_hint_that_does_not_verify_is_refused(setup: Setup, clock: FrozenClock) -> None:
    grace_token = await _id_token(setup, GRACE)
    foreign_client = await _id_token(setup, GRACE, other=True)
    header, payload, signature = grace_token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        for hint in (tampered, foreign_client, "not-a-jwt", grace_token + "x"):
            for prompt in ("none", None):
                extra = {"prompt": prompt} if prompt else {}
                url, _ = _url(setup, id_token_hint=hint, state="s-1", **extra)
                response = await browser.get(url)
                assert _error_of(response) == "invalid_request", hint
                assert parse_qs(urlsplit(_location(response)).query)["state"] == ["s-1"]


async def test_a_hint_for_another_user_asks_to_sign_in_as_that_user(
    setup: Setup, clock: FrozenClock
) -> None:
    """Decision: without prompt=none, a hint naming another user than the signed-in one sends
    the browser to sign in; signed in as the hinted user, the code is for them; signed in as
    anyone else, the answer is ``login_required`` (never a code for another user)."""
    ada_token = await _id_token(setup, ADA)
    async with _browser(setup.app) as browser:
        await _flow(browser, setup, GRACE)
        url, _ = _url(setup, id_token_hint=ada_token)
        login = _location(await browser.get(url))
        assert "reauth=1" in login
        back = await _sign_in(browser, GRACE, login)
        assert _error_of(await browser.get(back)) == "login_required"

        url, verifier = _url(setup, id_token_hint=ada_token)
        back = await _sign_in(browser, ADA, _location(await browser.get(url)))
        callback = _location(await browser.get(back))
        assert await _subject(setup, url, verifier, callback) == setup.ada


# -- item 7: every resource value survives sign-in and consent (RFC 8707) ------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_every_resource_survives_sign_in_and_consent(
    setup: Setup, clock: FrozenClock, method: str
) -> None:
    keys_url = "/.well-known/jwks.json"
    async with _browser(setup.app) as browser:
        url, verifier = _url(setup)
        url += "&" + urlencode([("resource", API_A), ("resource", API_B)])
        if method == "GET":
            response = await browser.get(url)
        else:
            response = await browser.post(
                "/authorize",
                content=urlsplit(url).query.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        back = await _sign_in(browser, GRACE, _location(response))
        assert parse_qs(urlsplit(back).query)["resource"] == [API_A, API_B]
        page = await browser.get(back)
        query = html.unescape(page.text.split('name="request" value="')[1].split('"')[0])
        assert parse_qs(query)["resource"] == [API_A, API_B]
        callback = _location(await _allow_if_asked(browser, page))
        keys = KeySet.import_key_set((await browser.get(keys_url)).json())
    token = await _oauth(setup).fetch_token(
        f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
    )
    claims = jwt.decode(token["access_token"], keys, algorithms=["ES256"]).claims
    assert sorted(claims["aud"]) == [API_A, API_B]
