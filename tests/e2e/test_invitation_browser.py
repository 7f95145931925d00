"""Chromium: an organization's owner invites someone from /account/organizations on a real
``ostiary dev`` server; the invitee reads the message in the dev outbox (/dev/mail), opens
the link, is sent to sign in, comes back to the invitation and joins; the link then says it
was used. Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest

from tests.e2e.harness import Server
from tests.e2e.test_browser import TIMEOUT_MS, chromium  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "correct horse battery staple 92"


def _sign_in(page: Any, email: str) -> None:
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#sign-in")


def test_invite_read_the_dev_outbox_sign_in_and_join(
    chromium: Any,  # noqa: F811
    server: Server,
) -> None:
    from playwright.sync_api import expect

    tag = secrets.token_hex(3)
    emails = server.create_users(f"owner{tag}", f"guest{tag}", password=PASSWORD)
    owner, guest = emails[f"owner{tag}"], emails[f"guest{tag}"]
    made = server.cli("orgs", "create", "--name", f"Lab {tag}", "--owner", owner, "--json")
    assert made.returncode == 0, made.stderr
    org_id = json.loads(made.stdout)["id"]

    admin = chromium.new_context(base_url=server.base_url)
    admin.set_default_timeout(TIMEOUT_MS)
    page = admin.new_page()
    try:
        page.goto("/account/organizations")
        _sign_in(page, owner)
        expect(page).to_have_url(f"{server.base_url}/account/organizations")
        form = page.locator(f'form.invite-form[data-org-id="{org_id}"]')
        form.locator(".invite-email").fill(guest.upper())  # addresses match case-insensitively
        form.locator(".invite-role").select_option("reader")
        with page.expect_navigation():
            form.locator("button.invite").click()
        expect(page.locator("#invited")).to_be_visible()
    finally:
        admin.close()

    context = chromium.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/dev/mail")
        mail = page.locator("section.mail", has=page.locator(".to", has_text=guest)).first
        expect(mail.locator(".subject")).to_contain_text(f"Lab {tag}")
        link = mail.locator(".links a").first.get_attribute("href")
        assert link is not None and re.fullmatch(
            re.escape(server.base_url) + r"/invitations/ost_inv_[\w-]+", link
        ), link
        page.goto(link)
        expect(page.locator("#org-name")).to_have_text(f"Lab {tag}")
        with page.expect_navigation():
            page.click("#sign-in")
        _sign_in(page, guest)
        expect(page).to_have_url(link)
        expect(page.locator("#roles")).to_have_text("reader")
        with page.expect_navigation():
            page.click("#accept")
        expect(page.locator("#joined")).to_be_visible()
        row = page.locator(f'tr[data-org-id="{org_id}"]')
        expect(row.locator(".roles")).to_have_text("reader")
        expect(row).to_contain_text("active")  # the only organization: the active one
        page.goto(link)
        expect(page.locator("#invitation-gone")).to_contain_text("already been used")
    finally:
        context.close()
