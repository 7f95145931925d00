"""A sign-in's second step (issue 11 section 4), in-process over ASGI, on every backend.

After the password, a user with an authenticator app holds only a signed, single-use ticket
(web/second_step.py); the code page turns it into a session with ``amr`` pwd otp mfa (RFC 8176)
and the multi-factor ``acr``. Codes come from pyotp with the secret the user was shown; ID
tokens are fetched with Authlib and verified with joserfc against the published JWKS.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock
from ostiary.features.sessions.models import Session
from ostiary.protocol.oidc import ACR_MFA, ACR_ONE_FACTOR
from ostiary.storage.sqla.tables import audit_events
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "ada@example.com"
TICKET = "ostiary_second_step"
SESSION = "ostiary_session"
STEP = timedelta(seconds=30)
REDIRECT = "https://app.example/callback"


class Enrolled:
    def __init__(self, user_id: str, app: pyotp.TOTP, codes: list[str]) -> None:
        self.user_id = user_id
        self.app = app  # the user's authenticator
        self.recovery_codes = codes


async def _enroll(app: Any, clock: FrozenClock, email: str = EMAIL) -> Enrolled:
    runtime = app.state.runtime
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(email, PASSWORD, name="Ada")
        enrollment = await unit.mfa.start_totp(user.id, email)
    totp = pyotp.TOTP(enrollment.secret)
    async with runtime.unit() as unit:
        codes = await unit.mfa.confirm_totp(user.id, totp.at(clock.now()), ip=None)
    clock.advance(STEP)  # the confirming code's step is spent
    return Enrolled(user.id, totp, codes)


@pytest.fixture
async def ada(app: Any, clock: FrozenClock) -> Enrolled:
    return await _enroll(app, clock)


def _browser(app: Any, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _password(client: httpx.AsyncClient, next_path: str = "/account") -> httpx.Response:
    response = await sign_in(client, EMAIL, next_path=next_path)
    assert response.status_code == 303, response.text[:300]
    return response


async def _submit(
    client: httpx.AsyncClient, code: str, *, method: str = "totp", next_path: str = "/account"
) -> httpx.Response:
    page = await client.get("/login/second-step", params={"next": next_path, "method": method})
    assert page.status_code == 200, page.headers.get("location")
    return await client.post(
        "/login/second-step",
        data={
            "code": code,
            "method": method,
            "csrf_token": csrf_from(page.text),
            "next": next_path,
        },
    )


def _replace_cookie(client: httpx.AsyncClient, name: str, value: str) -> None:
    client.cookies.delete(name)
    client.cookies.set(name, value)


async def _sessions(app: Any, user_id: str) -> list[Session]:
    async with app.state.runtime.unit() as unit:
        return await unit.sessions.list_for_user(user_id)


async def _session_amr(app: Any, user_id: str) -> list[list[str]]:
    async with app.state.runtime.unit() as unit:
        return [s.amr for s in await unit.sessions.list_for_user(user_id)]


# -- the password alone is not a session --------------------------------------------------


async def test_password_then_totp_signs_in_with_mfa_amr(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    response = await _password(client)
    assert response.headers["location"] == "/login/second-step?next=%2Faccount"
    assert SESSION not in response.cookies and TICKET in response.cookies
    ticket_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in ticket_cookie and "SameSite=lax" in ticket_cookie
    assert (await client.get("/account")).status_code == 303  # not signed in yet
    assert await _session_amr(app, ada.user_id) == []

    page = await client.get("/login/second-step?next=/account")
    assert 'autocomplete="one-time-code"' in page.text
    assert 'href="/login/second-step?next=%2Faccount&amp;method=recovery"' in page.text

    done = await _submit(client, ada.app.at(clock.now()))
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert SESSION in done.cookies
    assert (await client.get("/account")).status_code == 200
    assert await _session_amr(app, ada.user_id) == [["pwd", "otp", "mfa"]]


async def test_a_user_without_a_factor_signs_in_with_the_password_alone(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(EMAIL, PASSWORD)
    response = await _password(client)
    assert response.headers["location"] == "/account" and SESSION in response.cookies
    assert await _session_amr(app, user.id) == [["pwd"]]


async def test_a_wrong_code_is_shown_again_audited_and_the_ticket_still_works(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    good = ada.app.at(clock.now())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    refused = await _submit(client, wrong)
    assert refused.status_code == 401
    assert 'id="second-step-error"' in refused.text and "not valid" in refused.text
    assert SESSION not in refused.cookies
    assert await _session_amr(app, ada.user_id) == []
    async with app.state.runtime.unit() as unit:
        rows = (
            await unit.conn.execute(
                select(audit_events.c.action, audit_events.c.outcome).where(
                    audit_events.c.target == ada.user_id
                )
            )
        ).all()
    assert ("mfa.totp.verify", "failure") in [tuple(r) for r in rows]
    assert (await _submit(client, good)).status_code == 303


async def test_a_code_used_once_is_refused_at_the_next_sign_in(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    code = ada.app.at(clock.now())
    await _password(client)
    assert (await _submit(client, code)).status_code == 303
    page = await client.get("/account")
    await client.post("/logout", data={"csrf_token": csrf_from(page.text)})
    await _password(client)
    replayed = await _submit(client, code)  # RFC 6238 section 5.2: same step, same code
    assert replayed.status_code == 401
    assert await _session_amr(app, ada.user_id) == []


async def test_wrong_codes_are_throttled_with_a_429_page(
    client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    good = int(ada.app.at(clock.now()))
    statuses = []
    for i in range(1, 15):
        statuses.append((await _submit(client, f"{(good + 7 * i) % 1_000_000:06d}")).status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}
    throttled = await _submit(client, ada.app.at(clock.now()))
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers


async def test_a_recovery_code_signs_in_and_says_how_many_are_left(
    app: Any, client: httpx.AsyncClient, ada: Enrolled
) -> None:
    await _password(client)
    page = await client.get("/login/second-step?next=/account&method=recovery")
    assert 'id="code"' in page.text and "Recovery code" in page.text
    done = await _submit(client, ada.recovery_codes[0], method="recovery")
    assert done.status_code == 200 and SESSION in done.cookies
    assert "9 recovery codes left" in done.text
    assert 'href="/account"' in done.text
    assert await _session_amr(app, ada.user_id) == [["pwd", "otp", "mfa"]]
    # Spent: the same recovery code does not work twice.
    page = await client.get("/account")
    await client.post("/logout", data={"csrf_token": csrf_from(page.text)})
    await _password(client)
    again = await _submit(client, ada.recovery_codes[0], method="recovery")
    assert again.status_code == 401


# -- the ticket is the server's, for one user, one browser, five minutes, once ------------


async def test_the_code_page_without_a_ticket_goes_back_to_sign_in(
    client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    response = await client.get("/login/second-step?next=/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Faccount"
    page = await client.get("/login")
    posted = await client.post(
        "/login/second-step",
        data={"code": ada.app.at(clock.now()), "csrf_token": csrf_from(page.text)},
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login?")
    assert SESSION not in posted.cookies


async def test_a_tampered_ticket_is_refused(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    issued, nonce, user, sid, mac = client.cookies[TICKET].split(".")
    assert sid == ""  # a sign-in's ticket names no session to step up
    forged_mac = ("A" if mac[0] != "A" else "B") + mac[1:]
    for forged in (
        f"{issued}.{nonce}.{user}.{sid}.{forged_mac}",
        f"{int(issued) + 200}.{nonce}.{user}.{sid}.{mac}",  # a longer life
        f"{issued}.{secrets.token_urlsafe(16)}.{user}.{sid}.{mac}",  # a fresh nonce
        f"{issued}.{nonce}.{user}.{secrets.token_urlsafe(16)}.{mac}",  # a session to step up
        f"{issued}.{nonce}.{user}.{mac}",  # the format before step-up
        "not-a-ticket",
    ):
        _replace_cookie(client, TICKET, forged)
        response = await client.get("/login/second-step")
        assert response.status_code == 303, forged
    page = await client.get("/login")
    posted = await client.post(
        "/login/second-step",
        data={"code": ada.app.at(clock.now()), "csrf_token": csrf_from(page.text)},
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login?")
    assert await _session_amr(app, ada.user_id) == []


async def test_a_ticket_cannot_sign_in_another_user(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    grace = await _enroll(app, clock, "grace@example.com")
    await _password(client)  # Ada's password
    issued, nonce, _user, sid, mac = client.cookies[TICKET].split(".")
    grace_b64 = base64.urlsafe_b64encode(grace.user_id.encode()).rstrip(b"=").decode()
    _replace_cookie(client, TICKET, f"{issued}.{nonce}.{grace_b64}.{sid}.{mac}")
    assert (await client.get("/login/second-step")).status_code == 303
    assert await _session_amr(app, grace.user_id) == []


async def test_an_expired_ticket_is_refused(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    page = await client.get("/login/second-step")
    clock.advance(timedelta(seconds=301))
    posted = await client.post(
        "/login/second-step",
        data={"code": ada.app.at(clock.now()), "csrf_token": csrf_from(page.text)},
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login?")
    assert await _session_amr(app, ada.user_id) == []


async def test_a_ticket_copied_to_another_browser_is_refused(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    ticket = client.cookies[TICKET]
    async with _browser(app, "198.51.100.4") as other:
        await other.get("/login")  # its own CSRF cookie
        _replace_cookie(other, TICKET, ticket)
        assert (await other.get("/login/second-step")).status_code == 303
    assert await _session_amr(app, ada.user_id) == []


async def test_a_spent_ticket_cannot_be_used_again(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    ticket = client.cookies[TICKET]
    assert (await _submit(client, ada.app.at(clock.now()))).status_code == 303
    assert TICKET not in client.cookies  # cleared on success
    clock.advance(STEP)  # a new, valid code: only the ticket is replayed
    client.cookies.delete(SESSION)
    _replace_cookie(client, TICKET, ticket)
    page = await client.get("/login")
    replayed = await client.post(
        "/login/second-step",
        data={"code": ada.app.at(clock.now()), "csrf_token": csrf_from(page.text)},
    )
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/login?")
    assert SESSION not in replayed.cookies
    assert await _session_amr(app, ada.user_id) == [["pwd", "otp", "mfa"]]  # the first only
    # The code that request carried was not spent: it still signs in a real second step.
    await _password(client)
    assert (await _submit(client, ada.app.at(clock.now()))).status_code == 303


async def test_the_code_form_needs_its_csrf_token(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    response = await client.post(
        "/login/second-step", data={"code": ada.app.at(clock.now()), "csrf_token": "0" * 64}
    )
    assert response.status_code == 403
    assert await _session_amr(app, ada.user_id) == []


# -- OpenID Connect: the round trip carries amr and the multi-factor acr -------------------


async def _oauth_client(app: Any) -> AsyncOAuth2Client:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        registered, secret = await unit.clients.register(
            ClientRegistration(name="Notebook", redirect_uris=(REDIRECT,))
        )
    return AsyncOAuth2Client(
        client_id=registered.client_id,
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope="openid",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    )


def _authorization_url(oauth: AsyncOAuth2Client, **extra: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(
        "http://testserver/authorize", code_verifier=verifier, nonce="n-1", **extra
    )
    return url, verifier


async def _allow_if_asked(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    if response.status_code == 200 and "consent-form" in response.text:
        query = html.unescape(response.text.split('name="request" value="')[1].split('"')[0])
        response = await client.post(
            "/authorize/consent",
            data={"csrf_token": csrf_from(response.text), "request": query, "decision": "allow"},
        )
    return response


async def _password_and_code(
    client: httpx.AsyncClient, login_location: str, code: str
) -> httpx.Response:
    """From the /login URL /authorize sent us to, through both steps, back to /authorize."""
    assert login_location.startswith("/login?"), login_location
    next_path = parse_qs(urlsplit(login_location).query)["next"][0]
    page = await client.get(login_location)  # reauth=1 shows it to a signed-in browser too
    second = await client.post(
        "/login",
        data={
            "email": EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_from(page.text),
            "next": next_path,
        },
    )
    assert second.headers["location"].startswith("/login/second-step?")
    back = await _submit(client, code, next_path=next_path)
    assert back.status_code == 303 and back.headers["location"] == next_path
    return await _allow_if_asked(client, await client.get(next_path))


async def _claims(
    client: httpx.AsyncClient, oauth: AsyncOAuth2Client, callback: str, verifier: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Redeem the code with Authlib; the ID and access token claims, verified with joserfc."""
    assert callback.startswith(REDIRECT) and "code=" in callback, callback
    token = await oauth.fetch_token(
        "http://testserver/token", authorization_response=callback, code_verifier=verifier
    )
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    algs = ["RS256", "ES256"]
    return (
        jwt.decode(token["id_token"], keys, algorithms=algs).claims,
        jwt.decode(token["access_token"], keys, algorithms=algs).claims,
    )


def _error_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return parse_qs(urlsplit(location).query)["error"][0]


async def test_authorize_round_trip_gives_an_id_token_with_mfa_amr_and_acr(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    oauth = await _oauth_client(app)
    url, verifier = _authorization_url(oauth)
    to_login = await client.get(url)
    assert to_login.status_code == 303
    done = await _password_and_code(client, to_login.headers["location"], ada.app.at(clock.now()))
    id_claims, access = await _claims(client, oauth, done.headers["location"], verifier)
    assert id_claims["sub"] == ada.user_id
    assert id_claims["amr"] == ["pwd", "otp", "mfa"]
    assert id_claims["acr"] == ACR_MFA
    assert access["acr"] == ACR_MFA and access["amr"] == ["pwd", "otp", "mfa"]


# -- step-up: an essential acr of the multi-factor class (OIDC Core 5.5.1.1) ---------------

_ESSENTIAL_MFA = json.dumps({"id_token": {"acr": {"essential": True, "values": [ACR_MFA]}}})


async def _password_session_then_enrolled(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> Enrolled:
    """A session from before the user set up an authenticator: amr ["pwd"] only."""
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(EMAIL, PASSWORD)
    assert SESSION in (await _password(client)).cookies
    async with app.state.runtime.unit() as unit:
        enrollment = await unit.mfa.start_totp(user.id, EMAIL)
    totp = pyotp.TOTP(enrollment.secret)
    async with app.state.runtime.unit() as unit:
        codes = await unit.mfa.confirm_totp(user.id, totp.at(clock.now()), ip=None)
    clock.advance(STEP)
    return Enrolled(user.id, totp, codes)


async def _code_only(client: httpx.AsyncClient, asked: httpx.Response, code: str) -> httpx.Response:
    """A step-up: /authorize sent the signed-in browser to the code page (not to /login);
    the code alone brings it back to /authorize."""
    assert asked.status_code == 303, asked.text[:300]
    location = asked.headers["location"]
    assert location.startswith("/login/second-step?"), location
    query = parse_qs(urlsplit(location).query)
    assert query["acr"] == [ACR_MFA]
    next_path = query["next"][0]
    assert next_path.startswith("/authorize?") and "_ost_step_up=" in next_path
    back = await _submit(client, code, next_path=next_path)
    assert back.status_code == 303 and back.headers["location"] == next_path
    return await _allow_if_asked(client, await client.get(next_path))


async def test_an_essential_mfa_acr_steps_a_password_session_up_to_the_second_factor(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    user = await _password_session_then_enrolled(app, client, clock)
    oauth = await _oauth_client(app)
    (before,) = await _sessions(app, user.user_id)
    clock.advance(timedelta(minutes=3))
    url, verifier = _authorization_url(oauth, claims=_ESSENTIAL_MFA)
    done = await _code_only(client, await client.get(url), user.app.at(clock.now()))
    id_claims, access = await _claims(client, oauth, done.headers["location"], verifier)
    assert id_claims["acr"] == ACR_MFA and id_claims["amr"] == ["pwd", "otp", "mfa"]
    assert access["acr"] == ACR_MFA
    # The factor was added to the session (a new id: ASVS V3.2.1), with the time of each.
    (after,) = await _sessions(app, user.user_id)
    assert after.sid != before.sid and after.amr == ["pwd", "otp", "mfa"]
    assert after.factor_times["pwd"] == before.factor_times["pwd"]
    assert after.factor_times["otp"] == clock.now() and after.auth_time == clock.now()
    assert id_claims["auth_time"] == int(clock.now().timestamp())


async def test_voluntary_acr_values_step_up_when_the_user_holds_a_factor(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    user = await _password_session_then_enrolled(app, client, clock)
    oauth = await _oauth_client(app)
    url, verifier = _authorization_url(oauth, acr_values=ACR_MFA)
    done = await _code_only(client, await client.get(url), user.app.at(clock.now()))
    id_claims, _ = await _claims(client, oauth, done.headers["location"], verifier)
    assert id_claims["acr"] == ACR_MFA and id_claims["amr"] == ["pwd", "otp", "mfa"]


async def test_voluntary_acr_values_out_of_reach_go_on_with_the_class_achieved(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(EMAIL, PASSWORD)  # no second factor
    await _password(client)
    oauth = await _oauth_client(app)
    for acr_values in (ACR_MFA, "phr", "urn:example:unknown"):
        url, verifier = _authorization_url(oauth, acr_values=acr_values)
        done = await _allow_if_asked(client, await client.get(url))
        id_claims, _ = await _claims(client, oauth, done.headers["location"], verifier)
        assert id_claims["acr"] == ACR_ONE_FACTOR and id_claims["amr"] == ["pwd"]


async def test_a_class_no_factor_of_the_user_reaches_is_not_stepped_up_to(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Only a passkey reaches "phr": an authenticator app does not. Voluntary: the token says
    what was achieved; essential: unmet."""
    await _password_session_then_enrolled(app, client, clock)
    oauth = await _oauth_client(app)
    url, verifier = _authorization_url(oauth, acr_values="phr")
    done = await _allow_if_asked(client, await client.get(url))
    id_claims, _ = await _claims(client, oauth, done.headers["location"], verifier)
    assert id_claims["acr"] == ACR_ONE_FACTOR and id_claims["amr"] == ["pwd"]
    essential = json.dumps({"id_token": {"acr": {"essential": True, "values": ["phr"]}}})
    url, _ = _authorization_url(oauth, claims=essential)
    assert _error_of(await client.get(url)) == "unmet_authentication_requirements"


async def test_a_step_up_ticket_is_worth_nothing_without_its_session(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    user = await _password_session_then_enrolled(app, client, clock)
    oauth = await _oauth_client(app)
    url, _ = _authorization_url(oauth, claims=_ESSENTIAL_MFA)
    asked = await client.get(url)
    next_path = parse_qs(urlsplit(asked.headers["location"]).query)["next"][0]
    client.cookies.delete(SESSION)  # another browser's session would not match either
    page = await client.get("/login/second-step", params={"next": next_path})
    posted = await client.post(
        "/login/second-step",
        data={"code": user.app.at(clock.now()), "csrf_token": csrf_from(page.text)},
    )
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login?")
    assert await _session_amr(app, user.user_id) == [["pwd"]]


async def test_an_essential_mfa_acr_with_prompt_none_is_login_required(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await _password_session_then_enrolled(app, client, clock)
    oauth = await _oauth_client(app)
    url, _ = _authorization_url(oauth, claims=_ESSENTIAL_MFA, prompt="none")
    assert _error_of(await client.get(url)) == "login_required"


async def test_an_essential_mfa_acr_for_a_user_without_a_factor_is_unmet(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(EMAIL, PASSWORD)
    await _password(client)
    oauth = await _oauth_client(app)
    url, _ = _authorization_url(oauth, claims=_ESSENTIAL_MFA)
    assert _error_of(await client.get(url)) == "unmet_authentication_requirements"


async def test_discovery_publishes_the_classes_this_deployment_reaches(
    client: httpx.AsyncClient,
) -> None:
    # http://testserver cannot carry passkeys (plain http, not localhost): no phr / phrh.
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    assert metadata["acr_values_supported"] == [ACR_ONE_FACTOR, ACR_MFA]


# -- OSTIARY_MFA_REQUIRED: a user without a factor sets one up before OAuth ----------------


@pytest.fixture
async def strict_app(backend: Any, tmp_path: Any, clock: FrozenClock) -> Any:
    from ostiary.web.app import create_app
    from tests.conftest import make_settings

    application = create_app(make_settings(backend, tmp_path, mfa_required=True), clock=clock)
    yield application
    await application.state.runtime.close()


async def test_mfa_required_sends_a_user_without_a_factor_to_set_one_up(
    strict_app: Any, clock: FrozenClock
) -> None:
    async with strict_app.state.runtime.unit() as unit:
        await unit.accounts.create_user(EMAIL, PASSWORD)
    oauth = await _oauth_client(strict_app)
    async with _browser(strict_app) as browser:
        signed = await _password(browser)
        assert signed.headers["location"] == "/account/security?next=%2Faccount"
        assert SESSION in signed.cookies  # signed in, to reach the set-up page
        url, _ = _authorization_url(oauth)
        to_setup = await browser.get(url)
        assert to_setup.status_code == 303
        location = to_setup.headers["location"]
        assert location.startswith("/account/security?next=")
        back = parse_qs(urlsplit(location).query)["next"][0]
        assert back.startswith("/authorize?") and "code_challenge=" in back
        url, _ = _authorization_url(oauth, prompt="none")
        assert _error_of(await browser.get(url)) == "interaction_required"


async def test_mfa_required_steps_a_password_session_up_once_a_factor_exists(
    strict_app: Any, clock: FrozenClock
) -> None:
    oauth = await _oauth_client(strict_app)
    async with _browser(strict_app) as browser:
        user = await _password_session_then_enrolled(strict_app, browser, clock)
        url, verifier = _authorization_url(oauth)
        done = await _code_only(browser, await browser.get(url), user.app.at(clock.now()))
        id_claims, _ = await _claims(browser, oauth, done.headers["location"], verifier)
        assert id_claims["acr"] == ACR_MFA


async def test_one_ticket_submitted_twice_at_once_makes_one_session(
    app: Any, client: httpx.AsyncClient, ada: Enrolled
) -> None:
    """Two valid recovery codes raced on one ticket: exactly one sign-in wins."""
    await _password(client)
    page = await client.get("/login/second-step?method=recovery")
    token = csrf_from(page.text)

    twin = _browser(app)  # the same browser's cookies, sent on a second connection
    for name, value in client.cookies.items():
        twin.cookies.set(name, value)

    async def submit(browser: httpx.AsyncClient, code: str) -> httpx.Response:
        return await browser.post(
            "/login/second-step",
            data={"code": code, "method": "recovery", "csrf_token": token, "next": "/account"},
        )

    async with twin:
        results = await asyncio.gather(
            submit(client, ada.recovery_codes[0]), submit(twin, ada.recovery_codes[1])
        )
    assert sorted(r.status_code for r in results) == [200, 303]
    assert await _session_amr(app, ada.user_id) == [["pwd", "otp", "mfa"]]
    async with app.state.runtime.unit() as unit:
        assert (await unit.mfa.factors(ada.user_id)).recovery_codes_left == 9  # loser's kept


async def test_an_essential_password_acr_is_met_by_a_multi_factor_session(
    app: Any, client: httpx.AsyncClient, ada: Enrolled, clock: FrozenClock
) -> None:
    await _password(client)
    assert (await _submit(client, ada.app.at(clock.now()))).status_code == 303
    oauth = await _oauth_client(app)
    essential = json.dumps({"id_token": {"acr": {"essential": True, "value": ACR_ONE_FACTOR}}})
    url, verifier = _authorization_url(oauth, claims=essential)
    done = await _allow_if_asked(client, await client.get(url))
    id_claims, _ = await _claims(client, oauth, done.headers["location"], verifier)
    # OIDC Core 5.5.1.1: the value returned is one of those requested; the multi-factor
    # session meets the password class (and amr tells the whole story).
    assert id_claims["acr"] == ACR_ONE_FACTOR and id_claims["amr"] == ["pwd", "otp", "mfa"]
