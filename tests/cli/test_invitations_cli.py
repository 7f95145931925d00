"""``ostiary orgs invite``, ``orgs invitations list|revoke|resend`` and ``orgs update
--require-acr`` in process on a migrated SQLite data directory; and ``orgs invite`` mailing
through a real SMTP server (aiosmtpd on 127.0.0.1) when OSTIARY_SMTP_HOST is set."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.cli._support import create_org, create_users, migrated_data_dir, run, run_json


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with migrated_data_dir(tmp_path_factory, OSTIARY_ISSUER="http://127.0.0.1:8000") as values:
        create_users(values, "own@example.com")
        create_org(values, "Inv", owner="own@example.com")
        yield values


def test_invite_without_smtp_prints_the_link_then_list_resend_revoke(
    env: dict[str, str],
) -> None:
    made = run_json(env, "orgs", "invite", "inv", "--email", "New@Example.com", "--role", "member")
    assert made["email"] == "new@example.com" and made["roles"] == ["member"]
    assert made["mail"] == "not_sent" and made["state"] == "pending"
    assert made["link"].startswith("http://127.0.0.1:8000/invitations/ost_inv_")
    text = run(env, "orgs", "invite", "inv", "--email", "new@example.com", "--role", "reader")
    assert text.exit_code == 0 and "/invitations/ost_inv_" in text.stdout
    listed = run_json(env, "orgs", "invitations", "list", "inv")
    states = [(i["email"], i["state"]) for i in listed["items"]]
    assert states == [("new@example.com", "revoked"), ("new@example.com", "pending")]
    pending = listed["items"][1]["id"]
    assert [
        i["id"]
        for i in run_json(env, "orgs", "invitations", "list", "inv", "--status", "pending")["items"]
    ] == [pending]
    again = run_json(env, "orgs", "invitations", "resend", "inv", pending)
    assert again["id"] == pending and again["link"] != made["link"]
    revoked = run_json(env, "orgs", "invitations", "revoke", "inv", pending)
    assert revoked["status"] == "revoked"
    refused = run_json(env, "orgs", "invitations", "revoke", "inv", pending, code=1)
    assert refused["error"] == "conflict"
    assert run_json(env, "orgs", "invitations", "revoke", "inv", "nope", code=1)["error"] == (
        "not_found"
    )


def test_invite_refusals(env: dict[str, str]) -> None:
    bad = run_json(
        env, "orgs", "invite", "inv", "--email", "not-an-address", "--role", "member", code=1
    )
    assert bad["error"] == "invalid"
    role = run_json(
        env, "orgs", "invite", "inv", "--email", "a@example.com", "--role", "nope", code=1
    )
    assert role["error"] == "not_found"
    assert run(env, "orgs", "invite", "inv", "--email", "a@example.com").exit_code == 2  # usage
    listed = run_json(env, "orgs", "invitations", "list", "inv", "--status", "pending")
    assert all(i["email"] != "a@example.com" for i in listed["items"])
    status = run_json(env, "orgs", "invitations", "list", "inv", "--status", "x", code=1)
    assert status["error"] == "invalid"


def test_update_require_acr(env: dict[str, str]) -> None:
    org = run_json(env, "orgs", "update", "inv", "--require-acr", "urn:ostiary:acr:mfa")
    assert org["require_acr"] == "urn:ostiary:acr:mfa"
    assert run_json(env, "orgs", "show", "inv")["require_acr"] == "urn:ostiary:acr:mfa"
    assert run_json(env, "orgs", "update", "inv", "--require-acr", "phrh")["require_acr"] == "phrh"
    bad = run_json(env, "orgs", "update", "inv", "--require-acr", "urn:evil", code=1)
    assert bad["error"] == "invalid"
    assert run_json(env, "orgs", "update", "inv", "--require-acr", "none")["require_acr"] is None


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def test_invite_with_smtp_mails_the_link_and_does_not_print_it(env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = {
            **env,
            "OSTIARY_SMTP_HOST": "127.0.0.1",
            "OSTIARY_SMTP_PORT": str(port),
            "OSTIARY_SMTP_SECURITY": "none",
            "OSTIARY_SMTP_FROM": "no-reply@id.example",
        }
        made = run_json(
            smtp, "orgs", "invite", "inv", "--email", "m@example.com", "--role", "member"
        )
    finally:
        controller.stop()
    assert made["mail"] == "sent" and "link" not in made
    [message] = inbox.messages
    assert message["To"] == "m@example.com" and "Inv" in message["Subject"]
    body = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert "http://127.0.0.1:8000/invitations/ost_inv_" in body.get_payload(decode=True).decode()
    listed = run_json(env, "orgs", "invitations", "list", "inv", "--status", "pending")
    assert [i["mail_status"] for i in listed["items"] if i["email"] == "m@example.com"] == ["sent"]


def test_clients_create_and_update_org_scoped(env: dict[str, str]) -> None:
    made = run_json(
        env, "clients", "create", "--name", "Console", "--redirect-uri", "https://c.example/cb",
        "--scope", "openid", "--scope", "roles", "--org-scoped",
    )  # fmt: skip
    assert made["org_scoped"] is True and made["scopes"] == ["openid", "roles"]
    plain = run_json(
        env, "clients", "create", "--name", "Plain", "--redirect-uri", "https://p.example/cb"
    )
    assert plain["org_scoped"] is False
    off = run_json(env, "clients", "update", made["client_id"], "--not-org-scoped")
    assert off["org_scoped"] is False and off["scopes"] == ["openid", "roles"]
    on = run_json(env, "clients", "update", plain["client_id"], "--org-scoped")
    assert on["org_scoped"] is True
    kept = run_json(env, "clients", "update", plain["client_id"], "--name", "Renamed")
    assert kept["org_scoped"] is True and kept["name"] == "Renamed"
