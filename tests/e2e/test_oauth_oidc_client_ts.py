"""A browser single-page application using ``oidc-client-ts`` (v3) against a real ``ostiary dev``.

The SPA (tests/e2e/js/spa/) is served by a tiny static server on another 127.0.0.1 port, so
every call it makes to Ostiary (discovery, token, userinfo, revocation) is cross-origin and
needs CORS (OAuth 2.0 for Browser-Based Apps, section 6.1). In Debian's Chromium, driven by
Playwright: UserManager.signinRedirect to the real sign-in and consent pages, back to
callback.html (signinRedirectCallback, userinfo), a refresh with the refresh token
(signinSilent), revokeTokens(), then signoutRedirect() back to the post-logout redirect URI.

Needs ``/usr/bin/chromium`` and Node.js/npm (for the pinned oidc-client-ts in
tests/e2e/js/package-lock.json); skipped without them, failed when
``OSTIARY_TEST_REQUIRE_BROWSER=1`` (set by ``scripts/check.py``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixtures)
    FORM_ACTION_HINT,
    ORIGIN_NULL_HINT,
    TIMEOUT_MS,
    StaticServer,
    authorize_over_http,
    browser_sign_in,
    callback_params,
    chromium,
    csp_blocked,
    decode_verified,
    fetch_jwks,
    js_deps,
    one_backend,
    start_clients,
    static_server,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

BUNDLE = Path("node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js")

SCOPE = "openid profile email offline_access"


@dataclass
class Spa:
    server: Server
    site: StaticServer
    client_id: str
    newcomer: str  # a user of this module's first consent only: no test depends on order

    @property
    def callback(self) -> str:
        return f"{self.site.origin}/callback.html"

    @property
    def home(self) -> str:
        return f"{self.site.origin}/index.html"


@pytest.fixture(scope="module")
def spa(
    server: Server,
    js_deps: Path,  # noqa: F811 (imported fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Spa]:
    """The SPA on its own origin, registered with the CLI as a public client, and a user who
    has never used it."""
    config = tmp_path_factory.mktemp("spa") / "config.js"
    config.write_text("window.SPA_CONFIG = null;\n")
    extra = {"/oidc-client-ts.min.js": js_deps / BUNDLE, "/config.js": config}
    with static_server(js_deps / "spa", extra) as site:
        finish = start_clients(
            server,
            spa=[
                "--public",
                "--redirect-uri",
                f"{site.origin}/callback.html",
                "--post-logout-redirect-uri",
                f"{site.origin}/index.html",
            ],
        )
        newcomer = server.create_users("spa-newcomer", password=STRONG_PASSWORD)["spa-newcomer"]
        created = finish()["spa"]
        assert created["type"] == "public" and created["client_secret"] is None, created
        settings = {"issuer": server.base_url, "clientId": created["client_id"]}
        config.write_text(f"window.SPA_CONFIG = {orjson.dumps(settings).decode()};\n")
        yield Spa(server, site, created["client_id"], newcomer)


@dataclass
class Tab:
    """A page of a fresh browser context, with what it reported (errors, console)."""

    page: Any
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def step(self, script: str) -> Any:
        """Run one of window.spa's steps; they never throw, they answer {ok, result|error}."""
        outcome: dict[str, Any] = self.page.evaluate(script)
        log = self.page.locator("#log").inner_text()
        assert outcome["ok"], f"{script}: {outcome.get('error')}\nlog:\n{log}\n{self.console}"
        return outcome["result"]

    def wait_for_return(self, pattern: str, what: str) -> None:
        """Wait until the tab is back at the SPA (``pattern``), explaining what stopped it.

        Gives up at once when the browser reports a Content Security Policy violation.
        """
        target = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not target.match(self.page.url):
            if csp_blocked(self.console) or time.monotonic() > deadline:
                break
            self.page.wait_for_timeout(100)
        else:
            self.page.wait_for_load_state()
            return
        blocked = csp_blocked(self.console)
        main = self.page.locator("main")
        shown = main.inner_text() if main.count() else ""
        hint = FORM_ACTION_HINT if blocked else ORIGIN_NULL_HINT if "expired" in shown else ""
        raise AssertionError(
            f"{what} did not return to the SPA (at {self.page.url}): {shown!r} {blocked} {hint}"
        )

    def signed_in_at_callback(self) -> dict[str, Any]:
        """After callback.html ran signinRedirectCallback: the stored user's tokens."""
        from playwright.sync_api import expect

        expect(self.page.locator("#status")).to_have_text("signed-in")
        outcome = self.page.evaluate("window.spa.callbackResult")
        assert outcome["ok"], (outcome, self.page.locator("#log").inner_text(), self.console)
        assert outcome["result"]["state"] == {"from": "index"}
        tokens: dict[str, Any] = self.page.evaluate("window.spa.tokens()")
        return tokens


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:  # noqa: F811 (imported fixture)
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    found = Tab(context.new_page())
    found.page.on("pageerror", lambda exc: found.errors.append(str(exc)))
    found.page.on("console", lambda msg: found.console.append(f"{msg.type}: {msg.text}"))
    try:
        yield found
    finally:
        context.close()


def test_sign_in_refresh_revoke_and_sign_out(spa: Spa, tab: Tab) -> None:
    """A user's first visit: sign-in, consent, refresh, revocation, RP-initiated logout."""
    from playwright.sync_api import expect

    server, page = spa.server, tab.page
    page.goto(spa.home)
    expect(page.locator("#status")).to_have_text("signed-out")

    # signinRedirect: discovery (CORS), then a top-level navigation to /authorize -> /login.
    page.click("#sign-in")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.url.startswith(f"{server.base_url}/login?next=%2Fauthorize%3F"), page.url
    browser_sign_in(page, spa.newcomer, STRONG_PASSWORD)

    expect(page.locator("#consent-form")).to_be_visible()
    expect(page.locator("#client-name")).to_have_text("spa")
    page.click("#allow")
    tab.wait_for_return(re.escape(spa.callback) + r"\?", "consent")

    # callback.html: signinRedirectCallback (token request + userinfo, both cross-origin).
    first = tab.signed_in_at_callback()
    expect(page.locator("#email")).to_have_text(spa.newcomer)
    keys = fetch_jwks(server.base_url)
    _, id_claims = decode_verified(first["id_token"], keys)
    assert id_claims["aud"] == spa.client_id and id_claims["iss"] == server.base_url
    expect(page.locator("#sub")).to_have_text(id_claims["sub"])
    assert first["profile"]["sub"] == id_claims["sub"]
    assert first["profile"]["email"] == spa.newcomer  # merged from userinfo
    assert first["refresh_token"].startswith("ost_rt_")

    # signinSilent with a refresh token: a token request from the page, no iframe.
    refreshed = tab.step("window.spa.refresh()")
    assert refreshed == {"sub": id_claims["sub"]}
    second = page.evaluate("window.spa.tokens()")
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    _, access = decode_verified(second["access_token"], keys)
    assert access["client_id"] == spa.client_id and access["sub"] == id_claims["sub"]

    # revokeTokens: access and refresh token, via /revoke (200, {} as JSON).
    tab.step("window.spa.revoke()")
    with httpx.Client(base_url=server.base_url, timeout=15.0) as http:
        spent = http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": second["refresh_token"],
                "client_id": spa.client_id,
            },
        )
        assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
        info = http.get("/userinfo", headers={"Authorization": f"Bearer {second['access_token']}"})
        assert info.status_code == 401, info.text

    # signoutRedirect: end_session with id_token_hint, back to the post-logout redirect URI.
    page.evaluate("void window.spa.signOut()")  # navigates away: do not wait for the promise
    tab.wait_for_return(re.escape(spa.home) + r"(\?.*)?$", "signoutRedirect")
    expect(page.locator("#status")).to_have_text("signed-out")
    if "state=" in page.url:
        tab.step("window.spa.signOutCallback()")
    page.goto(f"{server.base_url}/account")
    expect(page).to_have_url(re.compile(re.escape(server.base_url) + r"/login\?next=/account$"))
    assert tab.errors == [], tab.errors
    cors = [line for line in tab.console if "CORS" in line or "Access-Control" in line]
    assert cors == [], cors


def test_cors_only_for_registered_public_client_origins(spa: Spa, tab: Tab, tmp_path: Path) -> None:
    """From the SPA's origin the endpoints are readable (without cookies); from another, not."""
    base, page = spa.server.base_url, tab.page
    probe = """async ([url, init]) => {
        try {
            const response = await fetch(url, init);
            return {status: response.status, body: await response.text()};
        } catch (error) {
            return {blocked: String(error)};
        }
    }"""
    page.goto(spa.home)
    discovery = page.evaluate(probe, [f"{base}/.well-known/openid-configuration", {}])
    assert discovery.get("status") == 200, discovery
    assert orjson.loads(discovery["body"])["issuer"] == base
    token = page.evaluate(
        probe,
        [
            f"{base}/token",
            {
                "method": "POST",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                "body": f"grant_type=refresh_token&refresh_token=nope&client_id={spa.client_id}",
            },
        ],
    )
    assert token.get("status") == 400 and "invalid_grant" in token["body"], token
    # Credentials (cookies) are never allowed cross-origin.
    with_cookies = page.evaluate(
        probe, [f"{base}/.well-known/jwks.json", {"credentials": "include"}]
    )
    assert "blocked" in with_cookies, with_cookies

    (tmp_path / "blank.html").write_text("<!doctype html><title>elsewhere</title>")
    with static_server(tmp_path) as stranger:
        page.goto(f"{stranger.origin}/blank.html")
        refused = page.evaluate(probe, [f"{base}/.well-known/openid-configuration", {}])
        assert "blocked" in refused, refused


def test_logout_without_id_token_hint_asks_then_returns_to_the_spa(spa: Spa, tab: Tab) -> None:
    """RP-Initiated Logout 1.0 section 2 without proof of the user: a confirmation page, whose
    form ends the session and continues to the registered (cross-origin) post-logout URI."""
    from playwright.sync_api import expect

    server, page = spa.server, tab.page
    page.goto(f"{server.base_url}/login")
    browser_sign_in(page, server.admin_email, server.admin_password)
    expect(page).to_have_url(f"{server.base_url}/account")

    query = urlencode(
        {"client_id": spa.client_id, "post_logout_redirect_uri": spa.home, "state": "bye-1"}
    )
    page.goto(f"{server.base_url}/end_session?{query}")
    expect(page.locator("#logout-confirm")).to_be_visible()
    page.click("#confirm-sign-out")
    tab.wait_for_return(re.escape(f"{spa.home}?state=bye-1") + "$", "the confirmed logout")
    page.goto(f"{server.base_url}/account")
    expect(page).to_have_url(re.compile(re.escape(server.base_url) + r"/login\?next=/account$"))


def test_returning_user_goes_from_sign_in_straight_back_to_the_spa(spa: Spa, tab: Tab) -> None:
    """Consent already given: POST /login -> /authorize -> 303 to the SPA, no consent page."""
    from playwright.sync_api import expect

    server, page = spa.server, tab.page
    # The user approved this SPA earlier (another browser, scripted over HTTP).
    query = urlencode(
        {
            "response_type": "code",
            "client_id": spa.client_id,
            "redirect_uri": spa.callback,
            "scope": SCOPE,
            "state": "earlier",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    with server.client() as earlier:
        approved = authorize_over_http(
            earlier, f"/authorize?{query}", server.admin_email, server.admin_password
        )
        assert callback_params(approved, spa.callback)["state"] == "earlier"

    page.goto(spa.home)
    page.click("#sign-in")
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#email", server.admin_email)
    page.fill("#password", server.admin_password)
    page.click("#sign-in")
    tab.wait_for_return(re.escape(spa.callback) + r"\?", "sign-in")
    tokens = tab.signed_in_at_callback()
    assert tokens["profile"]["email"] == server.admin_email
    assert tab.errors == [], tab.errors
