"""openid-client's Passport strategy (npm ``openid-client`` v6, ``openid-client/passport``) in an
Express app signs in and out of a real ``ostiary dev`` in Chromium.

The app (tests/e2e/js/passport_app.mjs) is openid-client's ``examples/passport.ts``:
``client.discovery(server, clientId, clientSecret)`` (so ``client_secret_post``, the library's
default for a secret), ``new Strategy({ config, scope: "openid email" }, verify)`` (PKCE, no
nonce), ``/login`` with ``passport.authenticate(server.host)``, and ``/logout`` redirecting to
``client.buildEndSessionUrl(config, { post_logout_redirect_uri })`` (``client_id``, no
``id_token_hint``, so Ostiary asks the user to confirm). The script's header lists the three
documented options added for this test server.

Needs Node.js 20+ and npm (packages pinned in tests/e2e/js/package-lock.json).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Server
from tests.e2e.httpflow import STRONG_PASSWORD
from tests.e2e.oauth_fixtures import chromium, js_deps, one_backend  # noqa: F401 (fixtures)
from tests.e2e.rp_apps import (
    AppProcess,
    app_process,
    browser_page,
    register_rp,
    sign_in_at_ostiary,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def rp(
    server: Server,
    js_deps: Path,  # noqa: F811 (imported fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppProcess]:
    logs = tmp_path_factory.mktemp("passport-rp")
    with app_process(["node", "passport_app.mjs"], cwd=js_deps, env={}, log_dir=logs) as app:
        client = register_rp(
            server,
            "Express Passport",
            "--redirect-uri",
            f"{app.origin}/login",
            "--post-logout-redirect-uri",
            app.origin,
        )
        app.configure(
            {
                "RP_ISSUER": server.base_url,
                "RP_CLIENT_ID": client["client_id"],
                "RP_CLIENT_SECRET": client["client_secret"],
            }
        )
        yield app


def test_passport_signs_in_and_out(chromium: Any, server: Server, rp: AppProcess) -> None:  # noqa: F811 (imported fixture)
    from playwright.sync_api import expect

    email = server.create_users("passport", password=STRONG_PASSWORD)["passport"]
    with browser_page(chromium) as page:
        page.goto(f"{rp.origin}/")  # ensureLoggedIn sends the browser to /login, then Ostiary
        sign_in_at_ostiary(page, server, email, STRONG_PASSWORD)
        assert page.locator("#rp-error").count() == 0, (
            f"{page.inner_text('#rp-error')}{rp.log_tail()}\n{server.logs_tail(5)}"
        )
        expect(page).to_have_url(f"{rp.origin}/")
        expect(page.locator("#email")).to_have_text(email)

        # The end-session URL carries client_id but no id_token_hint: Ostiary asks first.
        page.goto(f"{rp.origin}/logout")
        expect(page.locator("#logout-confirm")).to_be_visible()
        assert page.url.startswith(f"{server.base_url}/end_session?"), page.url
        # Back at the RP's origin, "/" wants a session again and the strategy sends the
        # browser to Ostiary, which has none any more: its sign-in form shows.
        with page.expect_navigation(url=f"{server.base_url}/login?**"):
            page.click("#confirm-sign-out")
        expect(page.locator("#login-form")).to_be_visible()
    rp.stop()
    assert "Error" not in rp.log_tail(), rp.log_tail()
