"""The ``ostiary`` command, in process (typer's CliRunner): where its state lives and which
issuers ``serve`` accepts. The server itself is not started: ``_serve`` is replaced by a probe
that records the settings it was given (tests/e2e/test_cli.py runs the real thing)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ostiary import cli
from ostiary.config import Settings

KEY = "q" * 43  # base64url of 32 bytes


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OSTIARY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env; ./ostiary-data would land here


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    started: list[Settings] = []
    monkeypatch.setattr(cli.server, "_serve", lambda settings, host, port: started.append(settings))
    return started


def _invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli.app, list(args), env=env, input=stdin)


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def _dev_state(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


# -- the data directory: --data-dir, else OSTIARY_DATA_DIR, else ./ostiary-data ------------


def test_dev_uses_ostiary_data_dir(tmp_path: Path, served: list[Settings]) -> None:
    target = tmp_path / "from-env"
    result = _invoke("dev", "--port", "8123", env={"OSTIARY_DATA_DIR": str(target)})
    assert result.exit_code == 0, result.output
    assert {"secret.key", "ostiary.db", "dev-admin.json"} <= _dev_state(target)
    assert not (tmp_path / "ostiary-data").exists()
    assert [s.data_dir for s in served] == [target]
    assert f"Data directory:  {target.resolve()}" in result.stdout


def test_dev_serves_localhost_so_that_passkeys_work(tmp_path: Path, served: list[Settings]) -> None:
    """WebAuthn refuses IP addresses; http://localhost is a secure context for browsers."""
    result = _invoke("dev", "--port", "8124", env={"OSTIARY_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 0, result.output
    assert "Issuer:          http://localhost:8124" in result.stdout
    assert "Passkeys:        on (relying party localhost)" in result.stdout
    [settings] = served
    assert settings.issuer == "http://localhost:8124"
    assert settings.webauthn is not None
    assert settings.webauthn.origins == ("http://localhost:8124",)


def test_dev_option_beats_the_environment(tmp_path: Path, served: list[Settings]) -> None:
    env = {"OSTIARY_DATA_DIR": str(tmp_path / "from-env")}
    result = _invoke("dev", "--data-dir", str(tmp_path / "from-option"), env=env)
    assert result.exit_code == 0, result.output
    assert "secret.key" in _dev_state(tmp_path / "from-option")
    assert not (tmp_path / "from-env").exists()
    result = _invoke("--data-dir", str(tmp_path / "from-root"), "dev", env=env)
    assert result.exit_code == 0, result.output
    assert "secret.key" in _dev_state(tmp_path / "from-root")
    assert not (tmp_path / "from-env").exists()


def test_dev_defaults_to_ostiary_data_in_the_working_directory(
    tmp_path: Path, served: list[Settings]
) -> None:
    result = _invoke("dev")
    assert result.exit_code == 0, result.output
    assert "secret.key" in _dev_state(tmp_path / "ostiary-data")


def test_every_command_takes_the_root_data_dir_option(tmp_path: Path) -> None:
    """`ostiary --data-dir D COMMAND` for commands that have no option of their own."""
    env = {"OSTIARY_DATA_DIR": str(tmp_path / "from-env"), "OSTIARY_SECRET_KEY": KEY}
    chosen = tmp_path / "chosen"
    assert _invoke("--data-dir", str(chosen), "migrate", env=env).exit_code == 0
    assert _dev_state(chosen) == {"ostiary.db"}
    created = _invoke(
        *("--data-dir", str(chosen), "users", "create", "--email", "a@example.com", "--json"),
        env=env,
    )
    assert created.exit_code == 0, created.output
    listed = _invoke("--data-dir", str(chosen), "users", "list", "--json", env=env)
    assert [u["email"] for u in json.loads(listed.stdout)] == ["a@example.com"]
    shown = _invoke("--data-dir", str(chosen), "config", "show", "--json", env=env)
    assert json.loads(shown.stdout)["data_dir"] == str(chosen)
    # Without the option, the environment decides (and that database is still empty).
    assert json.loads(_invoke("config", "show", "--json", env=env).stdout)["data_dir"] == str(
        tmp_path / "from-env"
    )
    assert not (tmp_path / "ostiary-data").exists()


# -- serve: which issuers -------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["http://id.example.com", "http://192.0.2.10:8000"])
def test_serve_refuses_plain_http_off_loopback(
    tmp_path: Path, served: list[Settings], issuer: str
) -> None:
    env = {"OSTIARY_ISSUER": issuer, "OSTIARY_SECRET_KEY": KEY}
    line = _one_line_error(_invoke("serve", env=env))
    assert "OSTIARY_ALLOW_INSECURE_ISSUER" in line and issuer in line
    assert served == []
    result = _invoke("serve", env={**env, "OSTIARY_ALLOW_INSECURE_ISSUER": "true"})
    assert result.exit_code == 0, result.output
    assert [s.issuer for s in served] == [issuer]


@pytest.mark.parametrize("issuer", ["https://id.example.com", "http://127.0.0.1:8000"])
def test_serve_accepts_https_and_loopback_http(
    tmp_path: Path, served: list[Settings], issuer: str
) -> None:
    result = _invoke("serve", env={"OSTIARY_ISSUER": issuer, "OSTIARY_SECRET_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert [s.issuer for s in served] == [issuer]


def test_dev_names_the_docs_only_when_they_are_served(
    tmp_path: Path, served: list[Settings]
) -> None:
    assert "/docs" in _invoke("dev").stdout
    off = _invoke("dev", env={"OSTIARY_API_DOCS": "false"})
    assert off.exit_code == 0, off.output
    assert "/docs" not in off.stdout
    assert served[-1].api_docs_enabled is False


def test_migrate_json_names_the_revision_the_database_is_at(tmp_path: Path) -> None:
    from ostiary.storage.sqla.migrate import head_revision

    env = {"OSTIARY_SECRET_KEY": KEY}
    result = _invoke("--data-dir", str(tmp_path / "d"), "migrate", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"revision": head_revision()}
    assert head_revision() is not None
    again = _invoke("--data-dir", str(tmp_path / "d"), "migrate", env=env)
    assert again.exit_code == 0 and f"({head_revision()})" in again.stdout


def test_purge_json_counts_what_each_kind_lost(tmp_path: Path) -> None:
    env = {"OSTIARY_SECRET_KEY": KEY}
    data = str(tmp_path / "d")
    assert _invoke("--data-dir", data, "migrate", env=env).exit_code == 0
    result = _invoke("--data-dir", data, "purge", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "deleted": {
            "revocations": 0,
            "authorization_codes": 0,
            "refresh_families": 0,
            "client_assertions": 0,
            "decision_log": 0,
            "totp_enrollments": 0,
            "invitations": 0,
            "ended_invitations": 0,
            "revoked_api_keys": 0,
            "expired_api_keys": 0,
            "sessions": 0,
        }
    }


# -- users create --email-verified, users update (OIDC Core 5.1 standard claims) ------------


def test_users_create_email_verified_and_update_claims(tmp_path: Path) -> None:
    env = {"OSTIARY_DATA_DIR": str(tmp_path / "d"), "OSTIARY_SECRET_KEY": KEY}
    assert _invoke("migrate", env=env).exit_code == 0
    created = _invoke(
        *("users", "create", "--email", "v@example.com", "--email-verified", "--json"), env=env
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["email_verified"] is True
    plain = _invoke("users", "create", "--email", "p@example.com", "--json", env=env)
    assert json.loads(plain.stdout)["email_verified"] is False

    updated = _invoke(
        *("users", "update", "p@example.com", "--name", "Pat Doe", "--given-name", "Pat"),
        *("--phone-number", "+1 415 555 0123", "--phone-number-verified"),
        *("--address-street", "1 Main St", "--address-country", "US", "--email-verified"),
        *("--zoneinfo", "America/Los_Angeles", "--birthdate", "1990"),
        "--json",
        env=env,
    )
    assert updated.exit_code == 0, updated.output
    data = json.loads(updated.stdout)
    assert data["name"] == "Pat Doe" and data["email_verified"] is True
    assert data["claims"] == {
        "given_name": "Pat",
        "phone_number": "+14155550123",
        "phone_number_verified": True,
        "address": {"street_address": "1 Main St", "country": "US"},
        "zoneinfo": "America/Los_Angeles",
        "birthdate": "1990",
    }
    # Address options change only the fields given; "" removes a claim.
    again = _invoke(
        *("users", "update", "p@example.com", "--address-country", "CA", "--given-name", ""),
        *("--no-email-verified", "--json"),
        env=env,
    )
    data = json.loads(again.stdout)
    assert data["claims"]["address"] == {"street_address": "1 Main St", "country": "CA"}
    assert "given_name" not in data["claims"] and data["email_verified"] is False


def test_users_update_refuses_invalid_claims_with_one_line(tmp_path: Path) -> None:
    env = {"OSTIARY_DATA_DIR": str(tmp_path / "d"), "OSTIARY_SECRET_KEY": KEY}
    assert _invoke("migrate", env=env).exit_code == 0
    _invoke("users", "create", "--email", "p@example.com", env=env)
    bad = _invoke("users", "update", "p@example.com", "--website", "javascript:x", env=env)
    assert "website must be an http:// or https:// URL" in _one_line_error(bad)
    unknown = _invoke("users", "update", "nobody@example.com", "--nickname", "x", env=env)
    assert "No such user" in _one_line_error(unknown)


# -- users reset-mfa, users list --json shows each user's factors ---------------------------


def test_users_reset_mfa_and_list_show_the_factors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyotp

    from ostiary.cli._common import run
    from ostiary.config import load_settings
    from ostiary.features.mfa.models import Passkey
    from ostiary.storage.sqla.mfa_repositories import SqlPasskeyStore

    env = {"OSTIARY_DATA_DIR": str(tmp_path / "d"), "OSTIARY_SECRET_KEY": KEY}
    assert _invoke("migrate", env=env).exit_code == 0
    for email in ("m@example.com", "p@example.com"):
        assert _invoke("users", "create", "--email", email, env=env).exit_code == 0
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def enroll(rt: Any) -> None:  # as /account/security does, with the user's app
        async with rt.unit() as unit:
            user = await unit.accounts.get_by_email("m@example.com")
            enrollment = await unit.mfa.start_totp(user.id, user.email)
            code = pyotp.TOTP(enrollment.secret).at(rt.clock.now())
            await unit.mfa.confirm_totp(user.id, code, ip=None)
            await unit.mfa.use_recovery_code(
                user.id, (await unit.mfa.regenerate_recovery_codes(user.id))[0], ip=None
            )
            # Two passkeys, stored as a registration would (tests/features/mfa drive that).
            for n in range(2):
                await SqlPasskeyStore(unit.conn).add(
                    Passkey(
                        credential_id=bytes([n]) * 16,
                        user_id=user.id,
                        name=f"Key {n}",
                        public_key=b"cose",
                        sign_count=0,
                        transports=("internal",),
                        aaguid="00000000-0000-0000-0000-000000000000",
                        backup_eligible=True,
                        backup_state=True,
                        user_verified=True,
                        created_at=rt.clock.now(),
                    )
                )

    run(load_settings(), enroll)

    listed = json.loads(_invoke("users", "list", "--json", env=env).stdout)
    assert {u["email"]: u["mfa"] for u in listed} == {
        "m@example.com": {"totp": True, "recovery_codes_left": 9, "passkeys": 2},
        "p@example.com": {"totp": False, "recovery_codes_left": 0, "passkeys": 0},
    }
    reset = _invoke("users", "reset-mfa", "m@example.com", "--json", env=env)
    assert reset.exit_code == 0, reset.output
    data = json.loads(reset.stdout)
    assert data["email"] == "m@example.com"
    assert data["removed"] == {"totp": True, "recovery_codes_left": 9, "passkeys": 2}
    listed = json.loads(_invoke("users", "list", "--json", env=env).stdout)
    assert all(u["mfa"] == {"totp": False, "recovery_codes_left": 0, "passkeys": 0} for u in listed)
    again = _invoke("users", "reset-mfa", "m@example.com", env=env)
    assert again.exit_code == 0 and "m@example.com had no second factor" in again.stdout
    run(load_settings(), enroll)
    said = _invoke("users", "reset-mfa", "m@example.com", env=env)
    assert said.exit_code == 0, said.output
    assert said.stdout.strip() == (
        "removed 2 passkey(s), the authenticator app and 9 recovery code(s) of m@example.com;"
        " 0 session(s) ended"
    )

    async def resets(rt: Any) -> list[Any]:
        from sqlalchemy import select

        from ostiary.storage.sqla.tables import audit_events as a

        async with rt.unit() as unit:
            query = select(a.c.actor, a.c.details).where(a.c.action == "mfa.reset")
            return list((await unit.conn.execute(query.order_by(a.c.seq))).all())

    audited = run(load_settings(), resets)
    assert [(r.actor, r.details) for r in audited] == [
        ("cli", {"authenticator_app": True, "unused_codes": 9, "passkeys": 2}),
        ("cli", {"authenticator_app": False, "unused_codes": 0, "passkeys": 0}),
        ("cli", {"authenticator_app": True, "unused_codes": 9, "passkeys": 2}),
    ]
    unknown = _invoke("users", "reset-mfa", "nobody@example.com", env=env)
    assert "No such user" in _one_line_error(unknown)


# -- clients create --pkce, clients update -------------------------------------------------


def _cli_json(data_dir: Path, *args: str) -> Any:
    result = _invoke("--data-dir", str(data_dir), *args, "--json", env={"OSTIARY_SECRET_KEY": KEY})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_clients_create_takes_a_pkce_mode(tmp_path: Path) -> None:
    _cli_json(tmp_path, "migrate")
    made = _cli_json(
        tmp_path, "clients", "create", "--name", "A", "--redirect-uri", "https://a.example/cb"
    )
    legacy = _cli_json(
        tmp_path, "clients", "create", "--name", "L", "--redirect-uri", "https://l.example/cb",
        "--pkce", "optional",
    )  # fmt: skip
    spa = _cli_json(
        tmp_path, "clients", "create", "--name", "S", "--redirect-uri", "https://s.example/cb",
        "--public",
    )  # fmt: skip
    assert (made["pkce"], legacy["pkce"], spa["pkce"]) == ("nonce", "optional", "required")
    listed = {c["client_id"]: c["pkce"] for c in _cli_json(tmp_path, "clients", "list")}
    assert listed[legacy["client_id"]] == "optional"
    refused = _invoke(
        "--data-dir", str(tmp_path), "clients", "create", "--name", "P", "--public",
        "--redirect-uri", "https://p.example/cb", "--pkce", "nonce",
        env={"OSTIARY_SECRET_KEY": KEY},
    )  # fmt: skip
    assert "PKCE" in _one_line_error(refused)


def test_clients_update_changes_what_is_given_and_keeps_id_and_secret(tmp_path: Path) -> None:
    _cli_json(tmp_path, "migrate")
    made = _cli_json(
        tmp_path, "clients", "create", "--name", "A", "--redirect-uri", "https://a.example/cb",
        "--redirect-uri", "https://a.example/cb2", "--post-logout-redirect-uri",
        "https://a.example/bye", "--resource", "https://api.example", "--access-token-ttl", "600",
    )  # fmt: skip
    client_id = made["client_id"]
    updated = _cli_json(
        tmp_path, "clients", "update", client_id, "--redirect-uri", "https://a.example/new",
        "--scope", "openid", "--scope", "email", "--pkce", "required", "--auth-method",
        "client_secret_post", "--id-token-ttl", "120", "--access-token-ttl", "0",
        "--no-resources", "--first-party",
    )  # fmt: skip
    assert updated["client_id"] == client_id and "client_secret" not in updated
    assert updated["redirect_uris"] == ["https://a.example/new"]  # the list was replaced
    assert updated["scopes"] == ["openid", "email"] and updated["pkce"] == "required"
    assert updated["token_endpoint_auth_method"] == "client_secret_post"
    assert (updated["access_token_ttl"], updated["id_token_ttl"]) == (None, 120)
    assert updated["resources"] == [] and updated["first_party"] is True
    assert updated["post_logout_redirect_uris"] == ["https://a.example/bye"]  # kept
    listed = [c for c in _cli_json(tmp_path, "clients", "list") if c["client_id"] == client_id]
    assert listed == [updated]


@pytest.mark.parametrize(
    "args",
    [
        ["--redirect-uri", "http://a.example/cb"],
        ["--pkce", "plain"],
        ["--auth-method", "none"],
        ["--grant-type", "implicit"],
        ["--refresh-token-ttl", "5"],
        ["--resource", "https://api.example", "--no-resources"],
    ],
)
def test_clients_update_refuses_what_create_refuses(tmp_path: Path, args: list[str]) -> None:
    _cli_json(tmp_path, "migrate")
    made = _cli_json(
        tmp_path, "clients", "create", "--name", "A", "--redirect-uri", "https://a.example/cb"
    )
    env = {"OSTIARY_SECRET_KEY": KEY}
    result = _invoke(
        "--data-dir", str(tmp_path), "clients", "update", made["client_id"], *args, env=env
    )
    _one_line_error(result)
    del made["client_secret"]
    assert _cli_json(tmp_path, "clients", "list") == [made]  # nothing written


def test_clients_update_of_an_unknown_client_fails(tmp_path: Path) -> None:
    _cli_json(tmp_path, "migrate")
    result = _invoke(
        "--data-dir", str(tmp_path), "clients", "update", "ost_nobody", "--pkce", "required",
        env={"OSTIARY_SECRET_KEY": KEY},
    )  # fmt: skip
    assert "ost_nobody" in _one_line_error(result)
