"""An RS256-only relying party: mozilla-django-oidc, with its docs' example settings, signs in
to a real ``ostiary dev`` in Chromium and verifies the RS256 ID token itself.

The Django project (written by the fixture) has exactly the settings of mozilla-django-oidc's
installation docs: ``mozilla_django_oidc`` in ``INSTALLED_APPS``, the
``OIDCAuthenticationBackend``, ``OIDC_RP_CLIENT_ID`` / ``OIDC_RP_CLIENT_SECRET``,
``OIDC_RP_SIGN_ALGO = "RS256"`` with ``OIDC_OP_JWKS_ENDPOINT``, the authorization, token and
user endpoints (copied from discovery, as an operator would), ``LOGIN_REDIRECT_URL``,
``LOGOUT_REDIRECT_URL`` and ``path("oidc/", include("mozilla_django_oidc.urls"))``.

With those defaults the library sends state and a nonce but no PKCE, authenticates with
``client_secret_post`` (``OIDC_TOKEN_USE_BASIC_AUTH`` is off), refuses an ID token whose
``alg`` is not RS256 and checks its signature against the JWKS key with the token's ``kid``,
then fetches userinfo and creates the Django user from its ``email``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import chromium, one_backend  # noqa: F401 (fixtures)
from tests.e2e.rp_apps import (
    AppProcess,
    browser_page,
    django_process,
    register_rp,
    sign_in_at_ostiary,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SETTINGS = """
import os

from rp_common import *

INSTALLED_APPS = [*INSTALLED_APPS, "mozilla_django_oidc"]
AUTHENTICATION_BACKENDS = ("mozilla_django_oidc.auth.OIDCAuthenticationBackend",)

OIDC_RP_CLIENT_ID = os.environ["OIDC_RP_CLIENT_ID"]
OIDC_RP_CLIENT_SECRET = os.environ["OIDC_RP_CLIENT_SECRET"]
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_OP_JWKS_ENDPOINT = os.environ["OIDC_OP_JWKS_ENDPOINT"]
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ["OIDC_OP_AUTHORIZATION_ENDPOINT"]
OIDC_OP_TOKEN_ENDPOINT = os.environ["OIDC_OP_TOKEN_ENDPOINT"]
OIDC_OP_USER_ENDPOINT = os.environ["OIDC_OP_USER_ENDPOINT"]
LOGIN_REDIRECT_URL = "/me/?logout=/oidc/logout/"
LOGIN_REDIRECT_URL_FAILURE = "/failed/"
LOGOUT_REDIRECT_URL = "/me/"
"""

URLS = """
from django.http import HttpResponse
from django.urls import include, path
from rp_views import me

urlpatterns = [
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("me/", me),
    path("failed/", lambda request: HttpResponse('<p id="failed">Sign-in failed.</p>')),
]
"""


@pytest.fixture(scope="module")
def rp(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    project = tmp_path_factory.mktemp("mozilla-rp")
    discovery = httpx.get(f"{server.base_url}/.well-known/openid-configuration").json()
    with django_process(project, SETTINGS, URLS) as app:
        client = register_rp(
            server, "Mozilla Django OIDC", "--redirect-uri", f"{app.origin}/oidc/callback/"
        )
        app.configure(
            {
                "OIDC_RP_CLIENT_ID": client["client_id"],
                "OIDC_RP_CLIENT_SECRET": client["client_secret"],
                "OIDC_OP_JWKS_ENDPOINT": discovery["jwks_uri"],
                "OIDC_OP_AUTHORIZATION_ENDPOINT": discovery["authorization_endpoint"],
                "OIDC_OP_TOKEN_ENDPOINT": discovery["token_endpoint"],
                "OIDC_OP_USER_ENDPOINT": discovery["userinfo_endpoint"],
                "RP_SECRET_KEY": "django-insecure-" + client["client_id"],
            }
        )
        yield app


def test_rs256_only_rp_signs_in_and_out(chromium: Any, server: Server, rp: AppProcess) -> None:  # noqa: F811 (imported fixture)
    from playwright.sync_api import expect

    email = server.create_users("mozilla", password=STRONG_PASSWORD)["mozilla"]
    with browser_page(chromium) as page:
        page.goto(f"{rp.origin}/oidc/authenticate/")
        sign_in_at_ostiary(page, server, email, STRONG_PASSWORD)
        page.wait_for_load_state()
        assert page.url.startswith(f"{rp.origin}/me/"), (
            f"mozilla-django-oidc refused the sign-in at {page.url}"
            f"{rp.log_tail(1500)}\n{server.logs_tail(5)}"
        )
        expect(page).to_have_url(f"{rp.origin}/me/?logout=/oidc/logout/")
        expect(page.locator("#email")).to_have_text(email)

        with page.expect_navigation(url=f"{rp.origin}/me/"):
            page.click("#rp-sign-out")
        expect(page.locator("#anonymous")).to_be_visible()
