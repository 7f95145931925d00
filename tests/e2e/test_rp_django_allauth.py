"""django-allauth's ``openid_connect`` provider, configured as its docs show for a generic
OpenID provider, signs in to a real ``ostiary dev`` in Chromium, then signs out of Django.

The Django project is written by the fixture into a temporary directory: allauth's installation
settings (``INSTALLED_APPS`` with ``allauth``, ``allauth.account``, ``allauth.socialaccount``,
``allauth.socialaccount.providers.openid_connect``; ``AccountMiddleware``; the allauth
authentication backend; ``path("accounts/", include("allauth.urls"))``) and the provider's
example from the allauth docs (socialaccount/providers/openid_connect)::

    SOCIALACCOUNT_PROVIDERS = {"openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [{"provider_id": ..., "name": ..., "client_id": ..., "secret": ...,
                  "settings": {"fetch_userinfo": True, "server_url": ISSUER}}]}}

``token_auth_method`` is left out, as the docs allow: allauth then picks
``client_secret_post`` because discovery lists it. allauth sends no nonce.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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

PROVIDER_ID = "ostiary"

SETTINGS = """
import os

from rp_common import *

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]
MIDDLEWARE = [*MIDDLEWARE, "allauth.account.middleware.AccountMiddleware"]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGIN_REDIRECT_URL = "/me/"

SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "ostiary",
                "name": "Ostiary",
                "client_id": os.environ["RP_CLIENT_ID"],
                "secret": os.environ["RP_CLIENT_SECRET"],
                "settings": {
                    "fetch_userinfo": True,
                    "server_url": os.environ["RP_ISSUER"],
                },
            }
        ],
    }
}
"""

URLS = """
from django.urls import include, path
from rp_views import me

urlpatterns = [path("accounts/", include("allauth.urls")), path("me/", me)]
"""


@pytest.fixture(scope="module")
def rp(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    project = tmp_path_factory.mktemp("allauth-rp")
    with django_process(project, SETTINGS, URLS) as app:
        client = register_rp(
            server,
            "Django allauth",
            "--redirect-uri",
            f"{app.origin}/accounts/oidc/{PROVIDER_ID}/login/callback/",
        )
        app.configure(
            {
                "RP_CLIENT_ID": client["client_id"],
                "RP_CLIENT_SECRET": client["client_secret"],
                "RP_ISSUER": server.base_url,
                "RP_SECRET_KEY": "django-insecure-" + client["client_id"],
            }
        )
        yield app


def test_allauth_signs_in_and_out(chromium: Any, server: Server, rp: AppProcess) -> None:  # noqa: F811 (imported fixture)
    from playwright.sync_api import expect

    email = server.create_users("allauth", password=STRONG_PASSWORD)["allauth"]
    with browser_page(chromium) as page:
        # allauth's login view asks before it leaves the site (a POST, CSRF-protected).
        page.goto(f"{rp.origin}/accounts/oidc/{PROVIDER_ID}/login/")
        with page.expect_navigation(url=f"{server.base_url}/login?**"):
            page.locator("form[method=post] button[type=submit]").click()
        sign_in_at_ostiary(page, server, email, STRONG_PASSWORD)
        page.wait_for_load_state()
        assert "Third-Party Login Failure" not in page.content(), (
            f"allauth refused the sign-in at {page.url}; Ostiary's log:\n{server.logs_tail(5)}"
        )
        expect(page).to_have_url(f"{rp.origin}/me/")
        expect(page.locator("#email")).to_have_text(email)

        # allauth's sign-out (a confirmation form), on the Django side only.
        page.goto(f"{rp.origin}/accounts/logout/")
        with page.expect_navigation():
            page.locator("form[method=post] button[type=submit]").click()
        page.goto(f"{rp.origin}/me/")
        expect(page.locator("#anonymous")).to_be_visible()
    assert "Internal Server Error" not in rp.log_tail(), rp.log_tail()
