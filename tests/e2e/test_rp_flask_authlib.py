"""Flask + Authlib, configured as Authlib's Flask client docs show for any OpenID provider,
signs in and out of a real ``ostiary dev`` in Chromium.

The app is the docs' shape: ``oauth.register(name, client_id=..., client_secret=...,
server_metadata_url=".../.well-known/openid-configuration", client_kwargs={"scope": "openid
email profile"})``, ``authorize_redirect(url_for(..., _external=True))`` and
``authorize_access_token()`` (which verifies the ID token against the JWKS and puts its claims
in ``token["userinfo"]``). Nothing else: Authlib sends state and a nonce, no PKCE, and
authenticates with ``client_secret_basic``. Sign-out is RP-initiated logout at the
``end_session_endpoint`` with ``id_token_hint`` and ``post_logout_redirect_uri``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, session, url_for
from markupsafe import escape

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import chromium, one_backend  # noqa: F401 (fixtures)
from tests.e2e.rp_apps import (
    browser_page,
    register_rp,
    sign_in_at_ostiary,
    wsgi_thread,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def make_app() -> tuple[Flask, OAuth]:
    """The RP of Authlib's Flask client docs; the provider is registered once the port is known."""
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(32)
    oauth = OAuth(app)

    @app.route("/")
    def home() -> str:
        user = session.get("user")
        if user is None:
            return '<p id="anonymous">Not signed in. <a href="/login">Sign in</a></p>'
        return (
            f'<p>Signed in as <span id="email">{escape(user["email"])}</span>'
            f' (<span id="sub">{escape(user["sub"])}</span>),'
            f' userinfo says <span id="userinfo-sub">{escape(session["userinfo_sub"])}</span>.</p>'
        )

    @app.route("/login")
    def login() -> Any:
        return oauth.ostiary.authorize_redirect(url_for("auth", _external=True))

    @app.route("/auth")
    def auth() -> Any:
        token = oauth.ostiary.authorize_access_token()
        session["user"] = dict(token["userinfo"])  # the verified ID token's claims
        session["userinfo_sub"] = oauth.ostiary.userinfo(token=token)["sub"]
        session["id_token"] = token["id_token"]
        return redirect("/")

    @app.route("/logout")
    def logout() -> Any:
        id_token = session.pop("id_token")
        session.clear()
        metadata = oauth.ostiary.load_server_metadata()
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": url_for("bye", _external=True),
            }
        )
        return redirect(f"{metadata['end_session_endpoint']}?{query}")

    @app.route("/bye")
    def bye() -> str:
        return '<p id="bye">Signed out.</p>'

    return app, oauth


@dataclass
class FlaskRp:
    origin: str
    client: dict[str, Any]


@pytest.fixture(scope="module")
def rp(server: Server) -> Iterator[FlaskRp]:
    app, oauth = make_app()
    with wsgi_thread(app) as origin:
        client = register_rp(
            server,
            "Flask Authlib",
            "--redirect-uri",
            f"{origin}/auth",
            "--post-logout-redirect-uri",
            f"{origin}/bye",
        )
        oauth.register(
            "ostiary",
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            server_metadata_url=f"{server.base_url}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile"},
        )
        yield FlaskRp(origin, client)


def test_flask_authlib_signs_in_and_out(chromium: Any, server: Server, rp: FlaskRp) -> None:  # noqa: F811 (imported fixture)
    from playwright.sync_api import expect

    email = server.create_users("flask", password=STRONG_PASSWORD)["flask"]
    with browser_page(chromium) as page:
        page.goto(f"{rp.origin}/login")
        sign_in_at_ostiary(page, server, email, STRONG_PASSWORD)
        expect(page).to_have_url(f"{rp.origin}/")
        expect(page.locator("#email")).to_have_text(email)
        assert page.inner_text("#sub") == page.inner_text("#userinfo-sub")

        # RP-initiated logout: the hint names this user, so Ostiary signs out without asking.
        page.goto(f"{rp.origin}/logout")
        expect(page).to_have_url(f"{rp.origin}/bye")
        expect(page.locator("#bye")).to_be_visible()

        # The Ostiary session is gone: signing in to the RP again asks for the password.
        page.goto(f"{rp.origin}/login")
        expect(page.locator("#login-form")).to_be_visible()
        assert page.url.startswith(f"{server.base_url}/login?"), page.url
