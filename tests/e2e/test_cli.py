"""The ``ostiary`` command line against a running server: both share one state.

Users (create, disable, set-password, list), signing keys (list, rotate, JWKS), the audit trail
(verify, tamper detection), ``config show`` masking, and one-line operator errors.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Server, base_env, free_port, run_cli
from tests.e2e.httpflow import STRONG_PASSWORD, login_error, sign_in

pytestmark = pytest.mark.e2e

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
WEAK_PASSWORD = "password123"


def _ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """Exit ``code``, exactly one ``error: ...`` line on stderr, no traceback anywhere."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert len(lines[0]) > len("error: ") + 5, lines[0]
    return lines[0]


def _sign_in_status(server: Server, email: str, password: str) -> int:
    with server.client() as client:
        return sign_in(client, email, password).status_code


def _jwks(server: Server) -> httpx.Response:
    response = httpx.get(f"{server.base_url}/.well-known/jwks.json", timeout=10)
    assert response.status_code == 200
    return response


def _kids(response: httpx.Response) -> list[str]:
    return [str(key["kid"]) for key in response.json()["keys"]]


# -- commands that need no running server ------------------------------------------------


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli({**base_env(), "COLUMNS": "120"}, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^\W*([a-z][a-z-]*)\s{2,}\S", result.stdout, flags=re.MULTILINE))
    expected = {"dev", "serve", "migrate", "users", "keys", "audit", "config"}
    assert expected <= listed, result.stdout


def test_serve_without_issuer_or_secret_exits_2_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty-data"
    empty.mkdir()
    env = {**base_env(), "OSTIARY_DATA_DIR": str(empty)}
    result = run_cli(
        env, "serve", "--host", "127.0.0.1", "--port", str(free_port()), cwd=tmp_path, timeout=60
    )
    line = _assert_one_line_error(result)
    assert "OSTIARY_ISSUER" in line or "OSTIARY_SECRET_KEY" in line, line
    assert list(empty.iterdir()) == [], "serve must not create state when it refuses to start"


# -- users -------------------------------------------------------------------------------


def test_created_user_signs_in_and_disable_ends_the_session_at_once(server: Server) -> None:
    email = f"cli-user-{secrets.token_hex(3)}@example.com"
    created = _ok_json(
        server.cli(
            *("users", "create", "--email", email, "--password-stdin", "--json"),
            stdin=STRONG_PASSWORD + "\n",
        )
    )
    assert created["email"] == email
    assert created["disabled"] is False
    assert "password" not in created  # it was given, not generated

    with server.client() as browser:
        response = sign_in(browser, email, STRONG_PASSWORD)
        assert response.status_code == 303, login_error(response.text)
        assert browser.get("/account").status_code == 200

        disabled = server.cli("users", "disable", email)
        assert disabled.returncode == 0, disabled.stderr
        assert "1 session(s) ended" in disabled.stdout, disabled.stdout

        after = browser.get("/account")
        assert after.status_code == 303
        assert after.headers["location"].startswith("/login")

    assert _sign_in_status(server, email, STRONG_PASSWORD) == 401

    listed = _ok_json(server.cli("users", "list", "--json"))
    (row,) = [u for u in listed if u["email"] == email]
    assert row["disabled"] is True
    assert row["id"] == created["id"]


def test_weak_password_is_refused_with_a_one_line_reason(server: Server) -> None:
    email = server.create_users("cli-weak", password=STRONG_PASSWORD)["cli-weak"]
    result = server.cli(
        "users", "set-password", email, "--password-stdin", stdin=WEAK_PASSWORD + "\n"
    )
    _assert_one_line_error(result)
    # Nothing changed: the old password still works, the weak one does not.
    assert _sign_in_status(server, email, WEAK_PASSWORD) == 401
    assert _sign_in_status(server, email, STRONG_PASSWORD) == 303


def test_create_without_password_prints_a_working_generated_one(server: Server) -> None:
    email = f"cli-generated-{secrets.token_hex(3)}@example.com"
    result = server.cli("users", "create", "--email", email)
    assert result.returncode == 0, result.stderr
    assert email in result.stdout
    found = re.search(r"^password: (\S+)$", result.stdout, flags=re.MULTILINE)
    assert found, result.stdout
    password = found.group(1)
    assert len(password) >= 16
    assert _sign_in_status(server, email, password) == 303
    assert _sign_in_status(server, email, password + "x") == 401


# -- signing keys ------------------------------------------------------------------------


def test_keys_list_and_jwks_agree_and_rotation_publishes_the_next_key(server: Server) -> None:
    rows = _ok_json(server.cli("keys", "list", "--json"))
    active = [row for row in rows if row["state"] == "active" and row["alg"] == "EdDSA"]
    assert len(active) == 1, rows
    assert {row["alg"] for row in rows if row["state"] == "active"} == {"ES256", "RS256", "EdDSA"}
    old_kid = active[0]["kid"]

    jwks = _jwks(server)
    assert old_kid in _kids(jwks)
    cache_control = jwks.headers.get("cache-control", "")
    max_age = re.search(r"max-age=(\d+)", cache_control)
    assert max_age, cache_control
    assert int(max_age.group(1)) > 0, cache_control

    before = datetime.now(UTC)
    rotated = _ok_json(
        server.cli("keys", "rotate", "--alg", "EdDSA", "--lead-seconds", "3600", "--json")
    )
    new_kid = rotated["kid"]
    assert new_kid != old_kid
    assert rotated["alg"] == "EdDSA"
    activates = datetime.fromisoformat(rotated["activates_at"])
    assert before + timedelta(seconds=3500) < activates < before + timedelta(seconds=3700)

    # `keys list` runs while we wait for the in-process JWKS cache (<= 5 s) to refresh.
    listing = server.cli_popen("keys", "list", "--json")
    deadline = time.monotonic() + 10
    kids = _kids(_jwks(server))
    while new_kid not in kids and time.monotonic() < deadline:
        time.sleep(0.25)
        kids = _kids(_jwks(server))
    out, err = listing.communicate(timeout=90)
    assert new_kid in kids, f"rotated key {new_kid} not published in JWKS within 10 s: {kids}"
    assert old_kid in kids, "the signing key must stay published"

    assert listing.returncode == 0, err
    states = {row["kid"]: row["state"] for row in json.loads(out)}
    assert states[old_kid] == "active", states
    assert states[new_kid] == "next", states

    final = _jwks(server)
    for key in final.json()["keys"]:
        assert not PRIVATE_JWK_MEMBERS & set(key), f"private members in JWKS: {sorted(key)}"
    (okp,) = [key for key in final.json()["keys"] if key["kid"] == new_kid]
    assert okp["kty"] == "OKP"
    assert okp.get("crv") == "Ed25519"


# -- audit -------------------------------------------------------------------------------


def test_audit_verify_is_intact_after_sign_ins(server: Server) -> None:
    assert _sign_in_status(server, server.admin_email, server.admin_password) == 303
    assert _sign_in_status(server, server.admin_email, "definitely-not-it-4711") == 401
    assert _sign_in_status(server, server.admin_email, server.admin_password) == 303
    result = server.cli("audit", "verify")
    assert result.returncode == 0, (result.stdout, result.stderr)
    found = re.search(r"audit trail intact: (\d+) event\(s\) verified", result.stdout)
    assert found, result.stdout
    # At least: the admin's creation, the first key, and the three sign-ins above.
    assert int(found.group(1)) >= 5, result.stdout


def test_audit_verify_names_a_tampered_event(server: Server) -> None:
    if server.backend != "sqlite":
        pytest.skip("the tamper check edits the SQLite file directly (SQLite variant only)")
    assert _sign_in_status(server, "tamper-nobody@example.com", "another-wrong-password-99") == 401
    db = sqlite3.connect(server.sqlite_path, timeout=15, isolation_level=None)
    try:
        (seq,) = db.execute(
            "SELECT seq FROM audit_events WHERE action = 'login' AND outcome = 'failure' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        db.execute("UPDATE audit_events SET outcome = 'success' WHERE seq = ?", (seq,))
        try:
            result = server.cli("audit", "verify")
        finally:
            db.execute("UPDATE audit_events SET outcome = 'failure' WHERE seq = ?", (seq,))
    finally:
        db.close()
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"BROKEN at event {seq} " in result.stdout, result.stdout
    assert f"({seq - 1} event(s) before it verified)" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


# -- configuration -----------------------------------------------------------------------


def test_config_show_masks_secrets(server: Server) -> None:
    secret = (server.data_dir / "secret.key").read_text(encoding="ascii").strip()
    db_password = "db-pw-e2e-" + secrets.token_hex(4)
    redis_password = "redis-pw-e2e-" + secrets.token_hex(4)
    result = server.cli(
        *("config", "show", "--json"),
        extra_env={
            "OSTIARY_SECRET_KEY": secret,
            "OSTIARY_DATABASE_URL": f"postgresql+asyncpg://ostiary:{db_password}@db.invalid/x",
            "OSTIARY_REDIS_URL": f"redis://:{redis_password}@redis.invalid:6379/0",
        },
    )
    shown = _ok_json(result)
    assert shown["secret_key"] == "**********"
    for value in (secret, db_password, redis_password):
        assert value not in result.stdout
        assert value not in result.stderr
    assert "db.invalid" in shown["database_url"]
    assert shown["data_dir"] == str(server.data_dir)
