"""Signing in with a passkey (web/routes/passkey_sign_in.py), in-process over ASGI on
http://localhost with a software authenticator (tests/soft_authenticator.py): passwordless on
/login (discoverable credentials, user verification, the user handle), and as the second step
after a password; amr per RFC 8176 (``hwk``/``swk`` + ``mfa``, with ``pwd`` after a password),
single-use challenges and tickets, disabled users, throttling, and the TOTP path beside it.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from sqlalchemy import select

from ostiary.config import Settings
from ostiary.features.clock import FrozenClock
from ostiary.storage.sqla.tables import audit_events
from tests.conftest import Backend, make_settings
from tests.soft_authenticator import SoftAuthenticator
from tests.web.helpers import PASSWORD, ceremony, csrf_from, sign_in

ORIGIN = "http://localhost"
EMAIL = "ada@example.com"
SESSION = "ostiary_session"
TICKET = "ostiary_second_step"
SECURITY = "/account/security"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, issuer=ORIGIN, login_ip_failures=4)


def _browser(app: Any, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _browser(app) as browser:
        yield browser


async def _user_with_passkey(
    app: Any, device: SoftAuthenticator, email: str = EMAIL, *, totp: bool = False
) -> tuple[Any, pyotp.TOTP | None]:
    """A user who added ``device`` on /account/security (the real routes, another browser)."""
    runtime = app.state.runtime
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(email, PASSWORD, name="Ada")
    app_totp = None
    if totp:
        async with runtime.unit() as unit:
            enrollment = await unit.mfa.start_totp(user.id, email)
            app_totp = pyotp.TOTP(enrollment.secret)
            await unit.mfa.confirm_totp(user.id, app_totp.at(runtime.clock.now()), ip=None)
        runtime.clock.advance(timedelta(seconds=30))
    async with _browser(app, "198.51.100.1") as setup:
        assert (await sign_in(setup, email)).status_code == 303
        if totp:  # the password alone does not sign in any more
            page = await setup.get("/login/second-step?method=totp")
            assert app_totp is not None
            done = await setup.post(
                "/login/second-step",
                data={
                    "code": app_totp.at(runtime.clock.now()),
                    "method": "totp",
                    "csrf_token": csrf_from(page.text),
                    "next": "/account",
                },
            )
            assert done.status_code == 303, done.text
        headers, options = await ceremony(setup, SECURITY, f"{SECURITY}/passkeys/options")
        added = await setup.post(
            f"{SECURITY}/passkeys/verify",
            json={"name": "Key", "credential": device.create(options, ORIGIN)},
            headers=headers,
        )
        assert added.status_code == 200, added.text
    return user, app_totp


async def _amrs(app: Any, user_id: str) -> list[list[str]]:
    async with app.state.runtime.unit() as unit:
        return [s.amr for s in await unit.sessions.list_for_user(user_id)]


async def _passwordless(
    client: httpx.AsyncClient, device: SoftAuthenticator, next_path: str = "/account", **kw: Any
) -> httpx.Response:
    headers, options = await ceremony(client, "/login", "/login/passkey/options")
    return await client.post(
        "/login/passkey",
        json={"credential": device.get(options, ORIGIN, **kw), "next": next_path},
        headers=headers,
    )


async def _failures(app: Any, action: str) -> list[Any]:
    async with app.state.runtime.unit() as unit:
        query = select(audit_events).where(
            audit_events.c.action == action, audit_events.c.outcome == "failure"
        )
        return list(await unit.conn.execute(query.order_by(audit_events.c.seq)))


# -- passwordless ------------------------------------------------------------------------------


async def test_the_login_page_offers_passkeys_and_autofill(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert 'autocomplete="username webauthn"' in page.text
    assert 'id="sign-in-passkey"' in page.text and "/static/webauthn.js" in page.text
    script = await client.get("/static/webauthn.js")
    assert script.status_code == 200 and "isConditionalMediationAvailable" in script.text
    assert "javascript" in script.headers["content-type"]


@pytest.mark.parametrize(
    ("synced", "amr"), [(True, ["swk", "mfa"]), (False, ["hwk", "mfa"])], ids=["swk", "hwk"]
)
async def test_passwordless_sign_in_with_a_discoverable_credential(
    app: Any, client: httpx.AsyncClient, synced: bool, amr: list[str]
) -> None:
    device = SoftAuthenticator(backup_eligible=synced, backup_state=synced)
    user, _ = await _user_with_passkey(app, device)
    _, options = await ceremony(client, "/login", "/login/passkey/options")
    assert options.get("allowCredentials", []) == []
    assert options["userVerification"] == "required"
    assert options["rpId"] == "localhost"
    done = await _passwordless(client, device, next_path="/account/security")
    assert done.status_code == 200, done.text
    assert done.json() == {"redirect": "/account/security"}
    assert SESSION in done.cookies
    assert (await client.get("/account")).status_code == 200
    assert amr in await _amrs(app, user.id)
    async with app.state.runtime.unit() as unit:
        query = select(audit_events.c.action, audit_events.c.outcome, audit_events.c.details)
        rows = await unit.conn.execute(
            query.where(audit_events.c.actor == user.id).order_by(audit_events.c.seq)
        )
        events = [tuple(r) for r in rows]
    kind = amr[0]
    assert events[-2:] == [
        ("login.passkey", "success", {"method": "passkey", "kind": kind}),
        ("login", "success", {"amr": amr}),
    ]


async def test_next_must_be_a_local_path(app: Any, client: httpx.AsyncClient) -> None:
    device = SoftAuthenticator()
    await _user_with_passkey(app, device)
    done = await _passwordless(client, device, next_path="https://evil.example/")
    assert done.status_code == 200 and done.json()["redirect"] == "/account"


async def test_a_challenge_is_used_once(app: Any, client: httpx.AsyncClient) -> None:
    device = SoftAuthenticator(counter=None)  # no counter: only the spent challenge stops it
    user, _ = await _user_with_passkey(app, device)
    headers, options = await ceremony(client, "/login", "/login/passkey/options")
    state = client.cookies.get("ostiary_webauthn") or ""
    answer = device.get(options, ORIGIN)
    first = await client.post("/login/passkey", json={"credential": answer}, headers=headers)
    assert first.status_code == 200
    async with _browser(app) as replayer:
        for name, value in client.cookies.items():
            replayer.cookies.set(name, value)
        replayer.cookies.set("ostiary_webauthn", state)
        replayer.cookies.delete(SESSION)
        again = await replayer.post("/login/passkey", json={"credential": answer}, headers=headers)
    assert again.status_code == 401 and SESSION not in again.cookies
    assert len(await _amrs(app, user.id)) == 2  # the setup browser's and the first
    [event] = await _failures(app, "login.passkey")
    assert event.details == {"reason": "replayed_challenge"}


async def test_a_disabled_user_is_refused_and_nothing_is_recorded_as_used(
    app: Any, client: httpx.AsyncClient
) -> None:
    device = SoftAuthenticator()
    user, _ = await _user_with_passkey(app, device)
    async with app.state.runtime.unit() as unit:
        await unit.accounts.disable(EMAIL)
    refused = await _passwordless(client, device)
    assert refused.status_code == 401 and SESSION not in refused.cookies
    [event] = await _failures(app, "login.passkey")
    assert event.details == {"reason": "user_disabled"}
    async with app.state.runtime.unit() as unit:
        [passkey] = await unit.passkeys.list(user.id)
    assert passkey.last_used_at is None and passkey.sign_count == 0


async def test_passwordless_needs_user_verification_and_the_owners_handle(
    app: Any, client: httpx.AsyncClient
) -> None:
    device = SoftAuthenticator()
    await _user_with_passkey(app, device)
    device.user_verified = False
    refused = await _passwordless(client, device)
    assert refused.status_code == 401
    assert refused.json()["error_description"].startswith("That passkey could not be used")
    device.user_verified = True
    assert (
        await _passwordless(client, device, user_handle=secrets.token_bytes(16))
    ).status_code == 401
    assert (await _passwordless(client, device)).status_code == 200


async def test_malformed_answers_are_a_clear_400(app: Any, client: httpx.AsyncClient) -> None:
    headers, _ = await ceremony(client, "/login", "/login/passkey/options")
    for body in (b"nope", b'{"credential": 1}', b"[]"):
        answer = await client.post(
            "/login/passkey",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400 and answer.json()["error"] == "malformed"
    garbage = await client.post("/login/passkey", json={"credential": {"id": "x"}}, headers=headers)
    assert garbage.status_code == 401  # refused and audited, not a 500


async def test_failed_passkey_sign_ins_are_throttled_per_address(
    app: Any, client: httpx.AsyncClient
) -> None:
    device = SoftAuthenticator()
    await _user_with_passkey(app, device)
    for _ in range(4):  # login_ip_failures=4
        assert (await _passwordless(client, device, rp_id="evil.example")).status_code == 401
    throttled = await _passwordless(client, device)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    async with _browser(app, "203.0.113.99") as elsewhere:
        assert (await _passwordless(elsewhere, device)).status_code == 200


# -- the second step after a password ----------------------------------------------------------


async def _second_step(
    client: httpx.AsyncClient, device: SoftAuthenticator, next_path: str = "/account", **kw: Any
) -> httpx.Response:
    page = await client.get("/login/second-step", params={"next": next_path})
    assert 'id="use-passkey"' in page.text, page.text
    headers, options = await ceremony(
        client, f"/login/second-step?next={next_path}", "/login/second-step/passkey/options"
    )
    return await client.post(
        "/login/second-step/passkey",
        json={"credential": device.get(options, ORIGIN, **kw), "next": next_path},
        headers=headers,
    )


async def test_password_then_passkey_signs_in_with_pwd_and_the_key(
    app: Any, client: httpx.AsyncClient
) -> None:
    device = SoftAuthenticator(backup_eligible=False, backup_state=False)
    user, _ = await _user_with_passkey(app, device)
    password = await sign_in(client, EMAIL)
    assert password.headers["location"] == "/login/second-step?next=%2Faccount"
    assert SESSION not in password.cookies
    page = await client.get("/login/second-step?next=/account")
    assert 'id="other-method"' in page.text and "method=recovery" in page.text
    assert "Use your authenticator app instead" not in page.text  # no TOTP
    _, options = await ceremony(client, "/login/second-step", "/login/second-step/passkey/options")
    assert [c["id"] for c in options["allowCredentials"]] == [device.get(options, ORIGIN)["id"]]
    done = await _second_step(client, device)
    assert done.status_code == 200, done.text
    assert done.json() == {"redirect": "/account"}
    assert SESSION in done.cookies
    assert ["pwd", "hwk", "mfa"] in await _amrs(app, user.id)
    # The ticket was spent: it cannot start a second ceremony.
    again = await client.post(
        "/login/second-step/passkey/options",
        json={},
        headers={"X-CSRF-Token": csrf_from((await client.get("/account")).text)},
    )
    assert again.status_code == 401


async def test_another_users_passkey_does_not_pass_the_second_step(
    app: Any, client: httpx.AsyncClient
) -> None:
    ada_device, eve_device = SoftAuthenticator(), SoftAuthenticator()
    ada, _ = await _user_with_passkey(app, ada_device)
    await _user_with_passkey(app, eve_device, "eve@example.com")
    await sign_in(client, EMAIL)
    refused = await _second_step(client, eve_device)
    assert refused.status_code == 401 and SESSION not in refused.cookies
    assert ["pwd", "swk", "mfa"] not in await _amrs(app, ada.id)
    [event] = await _failures(app, "mfa.passkey.verify")
    assert event.details == {"reason": "unknown_credential"}
    assert (await _second_step(client, ada_device)).status_code == 200


async def test_the_second_step_needs_its_ticket(app: Any, client: httpx.AsyncClient) -> None:
    token = csrf_from((await client.get("/login")).text)
    answer = await client.post(
        "/login/second-step/passkey/options", json={}, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 401 and answer.json()["redirect"] == "/login"


async def test_a_passwordless_state_does_not_finish_a_second_step(
    app: Any, client: httpx.AsyncClient
) -> None:
    device = SoftAuthenticator()
    await _user_with_passkey(app, device)
    await sign_in(client, EMAIL)
    headers, options = await ceremony(client, "/login", "/login/passkey/options")
    answer = await client.post(
        "/login/second-step/passkey",
        json={"credential": device.get(options, ORIGIN)},
        headers=headers,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "no_ceremony"


async def test_with_totp_and_a_passkey_both_paths_work(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    device = SoftAuthenticator()
    user, totp = await _user_with_passkey(app, device, totp=True)
    assert totp is not None
    await sign_in(client, EMAIL)
    page = await client.get("/login/second-step")
    assert 'id="use-passkey"' in page.text  # a passkey first: phishing-resistant
    assert "Use your authenticator app instead" in page.text
    code_page = await client.get("/login/second-step?method=totp")
    assert 'autocomplete="one-time-code"' in code_page.text
    assert 'id="passkey-method"' in code_page.text
    clock.advance(timedelta(seconds=30))
    done = await client.post(
        "/login/second-step",
        data={
            "code": totp.at(clock.now()),
            "method": "totp",
            "csrf_token": csrf_from(code_page.text),
            "next": "/account",
        },
    )
    assert done.status_code == 303
    async with _browser(app) as other:
        await sign_in(other, EMAIL)
        assert (await _second_step(other, device)).status_code == 200
    amrs = await _amrs(app, user.id)
    assert ["pwd", "otp", "mfa"] in amrs and ["pwd", "swk", "mfa"] in amrs


# -- what the relying party learns: acr and amr in the ID token --------------------------------

REDIRECT = "https://app.example/callback"


async def _oauth(app: Any) -> Any:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from ostiary.features.clients.service import ClientRegistration

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
    )


async def _allow_if_asked(client: httpx.AsyncClient, answer: httpx.Response) -> httpx.Response:
    if answer.status_code == 200 and "consent-form" in answer.text:
        request = html.unescape(answer.text.split('name="request" value="')[1].split('"')[0])
        answer = await client.post(
            "/authorize/consent",
            data={"csrf_token": csrf_from(answer.text), "request": request, "decision": "allow"},
        )
    return answer


async def _id_claims(
    client: httpx.AsyncClient, oauth: Any, answer: httpx.Response, verifier: str
) -> dict[str, Any]:
    """Redeem the code with Authlib; the ID token's claims, verified with joserfc."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    callback = answer.headers["location"]
    assert callback.startswith(REDIRECT) and "code=" in callback, callback
    token = await oauth.fetch_token(
        f"{ORIGIN}/token", authorization_response=callback, code_verifier=verifier
    )
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    claims: dict[str, Any] = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == ORIGIN
    return claims


def _authorization_url(oauth: Any, **extra: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(
        f"{ORIGIN}/authorize", code_verifier=verifier, nonce="n-1", **extra
    )
    return url, verifier


@pytest.mark.parametrize(
    ("synced", "password", "acr", "amr"),
    [
        (False, False, "phrh", ["hwk", "mfa"]),
        (True, False, "phr", ["swk", "mfa"]),
        (False, True, "phrh", ["pwd", "hwk", "mfa"]),
    ],
    ids=["passwordless-hwk", "passwordless-swk", "second-step-hwk"],
)
async def test_the_id_token_carries_the_passkeys_acr_and_amr(
    app: Any, client: httpx.AsyncClient, synced: bool, password: bool, acr: str, amr: list[str]
) -> None:
    """OIDC Core 2 (``acr``, ``amr``), RFC 8176; the token is fetched with Authlib and
    verified with joserfc against the published JWKS."""
    device = SoftAuthenticator(backup_eligible=synced, backup_state=synced)
    await _user_with_passkey(app, device)
    if password:
        await sign_in(client, EMAIL)
        assert (await _second_step(client, device)).status_code == 200
    else:
        assert (await _passwordless(client, device)).status_code == 200
    oauth = await _oauth(app)
    url, verifier = _authorization_url(oauth)
    claims = await _id_claims(
        client, oauth, await _allow_if_asked(client, await client.get(url)), verifier
    )
    assert claims["acr"] == acr and claims["amr"] == amr


async def test_an_essential_phishing_resistant_acr_steps_a_password_session_up_with_a_passkey(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """OIDC Core 5.5.1.1: a password session asked for ``phrh`` is sent to the second step with
    a step-up ticket; the passkey is added to the session and the token carries ``phrh``."""
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(EMAIL, PASSWORD)
    assert SESSION in (await sign_in(client, EMAIL)).cookies
    device = SoftAuthenticator(backup_eligible=False, backup_state=False)
    headers, options = await ceremony(client, SECURITY, f"{SECURITY}/passkeys/options")
    added = await client.post(
        f"{SECURITY}/passkeys/verify",
        json={"name": "Key", "credential": device.create(options, ORIGIN)},
        headers=headers,
    )
    assert added.status_code == 200
    assert await _amrs(app, user.id) == [["pwd"]]
    clock.advance(timedelta(minutes=2))
    oauth = await _oauth(app)
    essential = json.dumps({"id_token": {"acr": {"essential": True, "values": ["phrh"]}}})
    url, verifier = _authorization_url(oauth, claims=essential)
    asked = await client.get(url)
    assert asked.status_code == 303, asked.text[:300]
    location = asked.headers["location"]
    assert location.startswith("/login/second-step?"), location
    next_path = parse_qs(urlsplit(location).query)["next"][0]
    assert next_path.startswith("/authorize?")
    done = await _second_step(client, device, next_path=next_path)
    assert done.status_code == 200, done.text
    assert done.json()["redirect"] == next_path
    assert await _amrs(app, user.id) == [["pwd", "hwk", "mfa"]]  # one session, stepped up
    answer = await _allow_if_asked(client, await client.get(next_path))
    claims = await _id_claims(client, oauth, answer, verifier)
    assert claims["acr"] == "phrh" and claims["amr"] == ["pwd", "hwk", "mfa"]


async def test_a_step_up_is_asked_once_and_offers_only_a_passkey_for_phishing_resistance(
    app: Any, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """A session with the authenticator app, asked for ``phrh``: the second-step page offers
    the passkey alone (a code does not reach the class). The user's passkey may be synced, so
    the step-up reaches ``phr`` only: the request is not sent round again, an essential one is
    unmet and a voluntary one goes on with the class achieved."""
    device = SoftAuthenticator(backup_eligible=True, backup_state=True)
    user, totp = await _user_with_passkey(app, device, totp=True)
    assert totp is not None

    async def totp_session() -> None:
        async with app.state.runtime.unit() as unit:
            await unit.sessions.revoke_all(user.id, reason="test")
        client.cookies.clear()
        clock.advance(timedelta(seconds=30))
        assert (await sign_in(client, EMAIL)).status_code == 303
        page = await client.get("/login/second-step?method=totp")
        code = totp.at(clock.now())
        done = await client.post(
            "/login/second-step",
            data={"code": code, "method": "totp", "csrf_token": csrf_from(page.text)},
        )
        assert done.status_code == 303
        assert await _amrs(app, user.id) == [["pwd", "otp", "mfa"]]

    oauth = await _oauth(app)
    for claims_request, outcome in (
        ({"essential": True, "values": ["phrh"]}, "unmet_authentication_requirements"),
        ({"values": ["phrh"]}, "phr"),
    ):
        await totp_session()
        url, verifier = _authorization_url(
            oauth, claims=json.dumps({"id_token": {"acr": claims_request}})
        )
        location = (await client.get(url)).headers["location"]
        assert location.startswith("/login/second-step?"), location
        assert parse_qs(urlsplit(location).query)["acr"] == ["phrh"]
        step = await client.get(location)
        assert 'id="use-passkey"' in step.text and 'id="passkey-required"' in step.text
        assert 'id="other-method"' not in step.text and "recovery" not in step.text
        next_path = parse_qs(urlsplit(location).query)["next"][0]
        assert (await _second_step(client, device, next_path=next_path)).status_code == 200
        assert await _amrs(app, user.id) == [["pwd", "otp", "swk", "mfa"]]
        back = await _allow_if_asked(client, await client.get(next_path))
        assert back.status_code == 303 and "second-step" not in back.headers["location"]
        if outcome.startswith("unmet"):
            assert parse_qs(urlsplit(back.headers["location"]).query)["error"] == [outcome]
        else:
            claims = await _id_claims(client, oauth, back, verifier)
            assert claims["acr"] == outcome and claims["amr"] == ["pwd", "otp", "swk", "mfa"]
