"""``response_mode=form_post`` and ``prompt=select_account`` in Chromium against a real server.

OAuth 2.0 Form Post Response Mode section 2: the browser itself POSTs ``code``, ``state`` and
``iss`` (RFC 9207) to the client's redirect URI, here a small receiving server of the test
on 127.0.0.1 (another origin than Ostiary's), which answers as relying parties do: a 303 to a
page of its own. The page's CSP is read from the real response and must let exactly that
happen (no violation in the console). Authlib redeems the code; joserfc checks the ID token
against the JWKS. OpenID Connect Core 3.1.2.1 ``prompt=select_account``: right after a sign-in
made for the request, the user has chosen (no chooser); already signed in, the chooser shows.

Needs ``/usr/bin/chromium``; skipped without it, failed when ``OSTIARY_TEST_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixtures)
    TIMEOUT_MS,
    browser_sign_in,
    chromium,
    create_clients,
    csp_blocked,
    decode_verified,
    fetch_jwks,
    one_backend,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@dataclass
class Receiver:
    """The relying party's redirect URI: records each POST, then sends the browser on."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            received.posts.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("content-type", ""),
                    "fields": parse_qs(body, keep_blank_values=True),
                }
            )
            self.send_response(303)
            self.send_header("Location", "/signed-in")
            self.end_headers()

        def do_GET(self) -> None:
            page = b"<!doctype html><title>RP</title><p id='rp'>signed in at the RP</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Setup:
    server: Server
    client: dict[str, Any]
    email: str
    redirect: str


@pytest.fixture(scope="module")
def setup(server: Server, receiver: Receiver) -> Setup:
    redirect = f"{receiver.url}/callback"
    clients = create_clients(server, rp=["--redirect-uri", redirect])
    users = server.create_users("formpost", password=STRONG_PASSWORD)
    return Setup(server, clients["rp"], users["formpost"], redirect)


def _oauth(setup: Setup) -> OAuth2Client:
    return OAuth2Client(
        client_id=setup.client["client_id"],
        client_secret=setup.client["client_secret"],
        redirect_uri=setup.redirect,
        scope="openid email",
        code_challenge_method="S256",
        timeout=15.0,
    )


def _request(setup: Setup, **extra: str) -> tuple[str, str, str]:
    verifier = secrets.token_urlsafe(48)
    url, state = _oauth(setup).create_authorization_url(
        f"{setup.server.base_url}/authorize",
        code_verifier=verifier,
        nonce=secrets.token_urlsafe(8),
        response_mode="form_post",
        **extra,
    )
    return url, verifier, state


def _check_post(setup: Setup, post: dict[str, Any], state: str, verifier: str) -> dict[str, Any]:
    """The POST the RP received: form-encoded code/state/iss; redeem it, verify the ID token."""
    assert post["path"] == "/callback"
    assert post["content_type"].startswith("application/x-www-form-urlencoded")
    fields = {k: v[0] for k, v in post["fields"].items()}
    assert set(fields) == {"code", "state", "iss"} and fields["state"] == state
    assert fields["iss"] == setup.server.base_url
    token = _oauth(setup).fetch_token(
        f"{setup.server.base_url}/token", code=fields["code"], code_verifier=verifier
    )
    _, claims = decode_verified(token["id_token"], fetch_jwks(setup.server.base_url))
    return claims


def test_form_post_and_select_account_in_chromium(
    chromium: Any,  # noqa: F811 (imported fixture)
    setup: Setup,
    receiver: Receiver,
) -> None:
    from playwright.sync_api import expect

    context = chromium.new_context(base_url=setup.server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    form_posts: list[Any] = []  # Ostiary's form_post pages, as the browser received them
    page.on(
        "response",
        lambda r: (
            form_posts.append(r)
            if "form-action" in r.headers.get("content-security-policy", "")
            else None
        ),
    )
    try:
        # Signed out, prompt=select_account: the sign-in made for the request is the choice.
        url, verifier, state = _request(setup, prompt="select_account")
        page.goto(url)
        expect(page.locator("#login-form")).to_be_visible()
        browser_sign_in(page, setup.email, STRONG_PASSWORD)
        expect(page.locator("#consent-form")).to_be_visible()  # not the account chooser
        page.click("#allow")
        expect(page).to_have_url(f"{receiver.url}/signed-in")
        expect(page.locator("#rp")).to_be_visible()
        assert len(receiver.posts) == 1
        claims = _check_post(setup, receiver.posts[0], state, verifier)
        assert claims["email"] == setup.email

        [response] = form_posts
        assert response.status == 200
        headers = response.headers
        assert headers["cache-control"] == "no-store"
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and f"form-action {receiver.url}" in csp
        assert re.search(r"script-src 'sha256-[A-Za-z0-9+/]{43}='", csp), csp

        # Signed in now: the chooser shows; "continue" answers by form_post too.
        url, verifier, state = _request(setup, prompt="select_account")
        page.goto(url)
        expect(page.locator("#account-email")).to_have_text(setup.email)
        page.click("#continue")
        expect(page).to_have_url(f"{receiver.url}/signed-in")
        assert len(receiver.posts) == 2
        again = _check_post(setup, receiver.posts[1], state, verifier)
        assert again["sub"] == claims["sub"] and again["sid"] == claims["sid"]

        assert csp_blocked(console) == [] and page_errors == []
    finally:
        context.close()
