"""``ostiary dev`` started again on the data directory of an earlier run (a developer's second
day): it starts, and everything the first run created is still there, once.

The secret key file is kept, so the dev admin's session cookie, the demo client's secret and the
signing keys of the first run still work; the dev admin, the demo client and the signing key
are not created a second time.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Server, running_server
from tests.e2e.httpflow import SESSION_COOKIE, sign_in

pytestmark = pytest.mark.e2e

_DEMO_ID = re.compile(r"Demo client id:\s+(\S+)")
_DEMO_SECRET = re.compile(r"Demo secret:\s+(\S+)")


def _state(server: Server) -> dict[str, Any]:
    """What a developer sees of a run: printed credentials, files, JWKS, the database rows."""
    stdout = server.stdout_text()
    demo_id, demo_secret = _DEMO_ID.search(stdout), _DEMO_SECRET.search(stdout)
    assert demo_id and demo_secret, stdout
    with server.client() as client:
        kids = sorted(key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"])
        # The demo client authenticates (a wrong secret would be 401 invalid_client).
        token = client.post(
            "/token",
            data={"grant_type": "authorization_code", "code": "not-a-code"},
            auth=(demo_id.group(1), demo_secret.group(1)),
        )
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant", token.text
    with contextlib.closing(sqlite3.connect(f"file:{server.sqlite_path}?mode=ro", uri=True)) as db:
        users = [row[0] for row in db.execute("SELECT email FROM users")]
        clients = [row[0] for row in db.execute("SELECT client_id FROM clients")]
        keys = [row[0] for row in db.execute("SELECT kid FROM signing_keys")]
    return {
        "admin": (server.admin_email, server.admin_password),
        "demo": (demo_id.group(1), demo_secret.group(1)),
        "secret_key": (server.data_dir / "secret.key").read_bytes(),
        "kids": kids,
        "users": sorted(users),
        "clients": sorted(clients),
        "stored_keys": sorted(keys),
    }


def test_dev_restarted_on_its_data_directory_keeps_everything_once(tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path) as first:
        before = _state(first)
        with first.client() as browser:
            signed_in = sign_in(browser, first.admin_email, first.admin_password)
            assert signed_in.status_code == 303, signed_in.text
            cookie = browser.cookies[SESSION_COOKIE]
        port = first.port
        assert first.stop() == 0
        first.stopped_by_test = True

    # Same port, so the issuer and the demo client's redirect URI are the same as before.
    with running_server("sqlite", tmp_path, port=port) as second:
        after = _state(second)
        assert after == before
        assert before["users"].count(second.admin_email) == 1
        assert before["clients"].count(before["demo"][0]) == 1
        # One key per enabled algorithm (ES256, RS256, EdDSA), none added by the restart.
        assert len(before["kids"]) == len(before["stored_keys"]) == 3
        with second.client(cookies={SESSION_COOKIE: cookie}) as browser:
            account = browser.get("/account")
        assert account.status_code == 200, (account.status_code, account.headers)
        with second.client() as browser:
            again = sign_in(browser, second.admin_email, second.admin_password)
        assert again.status_code == 303, again.text
        assert second.process.poll() is None
