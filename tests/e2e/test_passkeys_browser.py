"""Chromium adds a passkey and signs in with it against a real ``ostiary dev`` server.

The server binds 127.0.0.1 and is reached as http://localhost:PORT, its default issuer (a
secure context; the relying party id is ``localhost``). The authenticator is Chromium's own
virtual one (DevTools protocol, ``WebAuthn.addVirtualAuthenticator``: CTAP2, internal transport,
resident keys, user verification), so the ceremonies run through the real browser API and
web/static/webauthn.js: register on /account/security, sign out, password + passkey, sign
out, passwordless (autofill, then the button). Each session's ``amr`` is read from the server's
database: Chromium's virtual authenticator is device-bound (backup eligibility clear), so
``hwk``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import Server, running_server
from tests.e2e.test_browser import TIMEOUT_MS, chromium  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "correct horse battery staple 92"


@pytest.fixture(scope="module")
def localhost_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(f"e2e-{backend}-passkeys")
    with running_server(backend, workdir, public_host="localhost") as server:
        yield server


def _session_amrs(server: Server, email: str, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ``amr`` of the user's sessions, read from the server's database and settings."""
    from ostiary.config import Settings
    from ostiary.web.runtime import Runtime

    for name, value in server.env.items():
        if name.startswith("OSTIARY_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(server.workdir)

    async def run() -> list[list[str]]:
        runtime = Runtime(Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            async with runtime.unit() as unit:
                user = await unit.accounts.get_by_email(email)
                return [s.amr for s in await unit.sessions.list_for_user(user.id)]
        finally:
            await runtime.close()

    # Playwright's sync API runs an event loop in this thread: the query runs in another.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _sign_out(page: Any) -> None:
    page.goto("/account")
    with page.expect_navigation():
        page.click("#sign-out")


def test_add_a_passkey_then_sign_in_with_it_twice(
    chromium: Any,  # noqa: F811
    localhost_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    server = localhost_server
    assert server.base_url.startswith("http://localhost:")
    name = f"pk{secrets.token_hex(2)}"
    email = server.create_users(name, password=PASSWORD)[name]

    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]

    def presence(enabled: bool) -> None:
        """The virtual user touches the authenticator whenever asked, or never: with presence,
        the login page's conditional request (autofill) is answered at once."""
        cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": authenticator, "enabled": enabled},
        )

    try:
        # 1. Password sign-in, then add a passkey on /account/security.
        page.goto("/login?next=/account/security")
        expect(page.locator("#email")).to_have_attribute("autocomplete", "username webauthn")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("#sign-in")
        expect(page).to_have_url(f"{server.base_url}/account/security")
        page.fill("#passkey-name", "Virtual key")
        page.click("#add-passkey")
        # A first factor: ten recovery codes, shown once by the script.
        expect(page.locator("#passkey-codes")).to_be_visible()
        expect(page.locator("[data-passkey-codes] li")).to_have_count(10)
        with page.expect_navigation():
            page.click("#passkey-codes-done")
        expect(page.locator("td.passkey-name")).to_have_text("Virtual key")
        expect(page.locator("td.passkey-kind")).to_have_text("This device only")
        expect(page.locator("#recovery-left")).to_have_text("10")

        # 2. Sign out; password, then the passkey as the second step.
        presence(False)  # the conditional request waits, as for a user who types
        _sign_out(page)  # to /login
        page.goto("/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("#sign-in")
        expect(page).to_have_url(re.compile(r"/login/second-step\?next=%2Faccount$"))
        presence(True)  # a new request: this one is answered
        page.click("#use-passkey")
        expect(page).to_have_url(f"{server.base_url}/account")
        expect(page.locator("#profile-email")).to_contain_text(email)
        assert _session_amrs(server, email, monkeypatch) == [["pwd", "hwk", "mfa"]]

        # 3. Passwordless by autofill (conditional mediation): with the virtual user present,
        # the login page's conditional request is answered as soon as it is made, no click.
        _sign_out(page)  # to /login, which offers the passkey in the e-mail field's autofill
        expect(page).to_have_url(f"{server.base_url}/account")
        assert _session_amrs(server, email, monkeypatch) == [["hwk", "mfa"]]

        # 4. Passwordless by the button, in a browser without conditional mediation (one
        # request at a time, so the answer is the button's).
        page.add_init_script(
            "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"
        )
        presence(False)
        _sign_out(page)
        page.goto("/login?next=/account/security")
        presence(True)
        page.click("#sign-in-passkey")
        expect(page).to_have_url(f"{server.base_url}/account/security")
        expect(page.locator("td.passkey-name")).to_have_text("Virtual key")
        assert _session_amrs(server, email, monkeypatch) == [["hwk", "mfa"]]
        assert errors == []
    finally:
        context.close()


def test_an_authlib_client_asking_for_phishing_resistance_steps_up_to_the_passkey(
    chromium: Any,  # noqa: F811
    localhost_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11 section 5: a relying party (Authlib) asks for ``phrh`` as an essential ``acr``
    (OIDC Core 5.5.1.1); the user is signed in with the password only (the passkey was added
    after), so the browser is asked for the passkey alone, and the ID token, verified with
    joserfc against the JWKS, carries ``phrh`` and ``amr`` pwd hwk mfa."""
    from authlib.integrations.httpx_client import OAuth2Client
    from playwright.sync_api import expect

    from tests.e2e.oauth_fixtures import create_clients, decode_verified, fetch_jwks

    server = localhost_server
    redirect = "http://127.0.0.1:9/rp/callback"  # never reached: the browser's request is caught
    rp = create_clients(server, rp=["--redirect-uri", redirect])["rp"]
    name = f"su{secrets.token_hex(2)}"
    email = server.create_users(name, password=PASSWORD)[name]

    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    callbacks: list[str] = []

    def catch(route: Any) -> None:
        callbacks.append(route.request.url)
        route.fulfill(status=200, body="back at the relying party")

    page.route("http://127.0.0.1:9/**", catch)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    oauth = OAuth2Client(
        rp["client_id"],
        rp["client_secret"],
        redirect_uri=redirect,
        scope="openid profile",
        code_challenge_method="S256",
    )
    try:
        # A password session; the passkey is added after it, so the session has "pwd" only.
        page.add_init_script(
            "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"
        )
        page.goto("/login?next=/account/security")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("#sign-in")
        page.fill("#passkey-name", "Laptop")
        page.click("#add-passkey")
        with page.expect_navigation():
            page.click("#passkey-codes-done")
        assert _session_amrs(server, email, monkeypatch) == [["pwd"]]

        verifier = secrets.token_urlsafe(48)
        url, state = oauth.create_authorization_url(
            f"{server.base_url}/authorize",
            code_verifier=verifier,
            nonce=secrets.token_urlsafe(16),
            claims='{"id_token": {"acr": {"essential": true, "values": ["phrh"]}}}',
        )
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/login/second-step\?.*acr=phrh"))
        expect(page.locator("#passkey-required")).to_be_visible()
        expect(page.locator("#other-method")).to_have_count(0)  # a code would not do
        page.click("#use-passkey")
        page.click("#allow")  # the consent page: this relying party is new to the user
        page.wait_for_url("http://127.0.0.1:9/**")
        assert len(callbacks) == 1
        token = oauth.fetch_token(
            f"{server.base_url}/token", authorization_response=callbacks[0], code_verifier=verifier
        )
        _header, claims = decode_verified(token["id_token"], fetch_jwks(server.base_url))
        assert claims["acr"] == "phrh" and claims["amr"] == ["pwd", "hwk", "mfa"]
        assert claims["aud"] == rp["client_id"] and state in callbacks[0]
        assert _session_amrs(server, email, monkeypatch) == [["pwd", "hwk", "mfa"]]
    finally:
        oauth.close()
        context.close()
