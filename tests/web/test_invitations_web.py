"""Invitation links, /account/organizations (active organization, leaving) and /dev/mail,
in-process over ASGI on SQLite and PostgreSQL: sign-in first, e-mail match, CSRF, replay,
expiry and revocation pages (never a 500), the last owner kept, the dev outbox only in dev."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ostiary.storage.sqla.tables import audit_events
from tests.conftest import Backend, make_settings
from tests.web.helpers import PASSWORD, csrf_from, sign_in

INVITEE = "ada@example.com"


async def _setup(app: Any) -> tuple[str, Any, Any]:
    rt = app.state.runtime
    async with rt.unit() as unit:
        owner = await unit.accounts.create_user("owner@example.com", PASSWORD, name="Olive")
        invitee = await unit.accounts.create_user(INVITEE, PASSWORD)
        org = await unit.orgs.create("Acme <Labs>", actor=None)
        await unit.orgs.add_member(org.id, owner.id, actor=None)
        await unit.rbac.assign(org.id, ("user", owner.id), "owner", actor=None)
    return org.id, owner, invitee


async def _token(app: Any, org: str, email: str = INVITEE, roles: list[str] | None = None) -> str:
    result = await app.state.runtime.invite(org, email, roles or ["member"], actor=None, send=False)
    token = result.link.rsplit("/", 1)[1]
    assert result.link == f"http://testserver/invitations/{token}"
    return str(token)


async def test_unknown_and_hostile_tokens_get_a_clear_page(
    app: Any, client: httpx.AsyncClient
) -> None:
    for token in (
        "ost_inv_" + "A" * 43,
        "x",
        "%00",
        "ost_inv_" + "a" * 500,
        "ost_inv_%0d%0a" + "a" * 30,
    ):
        page = await client.get(f"/invitations/{token}")
        assert page.status_code == 404, token
        assert "not valid" in page.text and "Acme" not in page.text


async def test_sign_in_first_then_accept_once(app: Any, client: httpx.AsyncClient) -> None:
    org, _, invitee = await _setup(app)
    token = await _token(app, org, "ADA@example.com", ["member", "reader"])
    here = f"/invitations/{token}"
    page = await client.get(here)
    assert page.status_code == 200
    assert "Acme &lt;Labs&gt;" in page.text  # escaped
    assert f'href="/login?next={here}"' in page.text and "sign-up" in page.text
    assert INVITEE not in page.text  # masked until the invitee signs in
    signed = await sign_in(client, INVITEE, next_path=here)
    assert signed.status_code == 303 and signed.headers["location"] == here
    page = await client.get(here)
    assert page.status_code == 200 and 'id="accept"' in page.text
    assert "member, reader" in page.text
    refused = await client.post(here, data={"csrf_token": "0" * 64})
    assert refused.status_code == 403
    joined = await client.post(here, data={"csrf_token": csrf_from(page.text)})
    assert joined.status_code == 303
    assert joined.headers["location"] == "/account/organizations?notice=joined"
    async with app.state.runtime.unit() as unit:
        assert await unit.orgs.is_member(org, invitee.id)
    again = await client.post(here, data={"csrf_token": csrf_from(page.text)})
    assert again.status_code == 410 and "already been used" in again.text
    assert (await client.get(here)).status_code == 410
    account = await client.get("/account")
    assert "Acme &lt;Labs&gt;" in account.text and "member, reader" in account.text


async def test_another_account_is_refused(app: Any, client: httpx.AsyncClient) -> None:
    org, _, invitee = await _setup(app)
    token = await _token(app, org)
    here = f"/invitations/{token}"
    await sign_in(client, "owner@example.com")
    page = await client.get(here)
    assert page.status_code == 403 and 'id="wrong-email"' in page.text
    posted = await client.post(here, data={"csrf_token": csrf_from(page.text)})
    assert posted.status_code == 403 and "another e-mail address" in posted.text
    async with app.state.runtime.unit() as unit:
        assert not await unit.orgs.is_member(org, invitee.id)
        [pending] = (await unit.invitations.list_invitations(org))[0]
        assert pending.status == "pending"


async def test_expired_and_revoked_links(app: Any, client: httpx.AsyncClient, clock: Any) -> None:
    org, _, _ = await _setup(app)
    revoked = await _token(app, org)
    async with app.state.runtime.unit() as unit:
        [first] = (await unit.invitations.list_invitations(org, status="pending"))[0]
        await unit.invitations.revoke(org, first.id, actor=None)
    expired = await _token(app, org)
    await sign_in(client, INVITEE)
    page = await client.get(f"/invitations/{revoked}")
    assert page.status_code == 410 and "withdrawn" in page.text
    clock.advance(timedelta(seconds=app.state.runtime.settings.invitation_ttl_seconds))
    page = await client.get(f"/invitations/{expired}")
    assert page.status_code == 410 and "expired" in page.text
    await sign_in(client, INVITEE)  # the session of a week ago has ended
    form = await client.get("/account")
    posted = await client.post(f"/invitations/{expired}", data={"csrf_token": csrf_from(form.text)})
    assert posted.status_code == 410


async def test_post_without_a_session_goes_to_sign_in(app: Any, client: httpx.AsyncClient) -> None:
    org, _, _ = await _setup(app)
    token = await _token(app, org)
    page = await client.get("/login")  # a form of this browser's, without a session
    posted = await client.post(f"/invitations/{token}", data={"csrf_token": csrf_from(page.text)})
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/login?next=/invitations/{token}"


async def test_active_organization_and_leaving(app: Any, client: httpx.AsyncClient) -> None:
    org, owner, invitee = await _setup(app)
    async with app.state.runtime.unit() as unit:
        other = await unit.orgs.create("Other", actor=None)
        stranger = await unit.orgs.create("Stranger", actor=None)
        for org_id in (org, other.id):
            await unit.orgs.add_member(org_id, invitee.id, actor=None)
            await unit.rbac.assign(org_id, ("user", invitee.id), "member", actor=None)
    await sign_in(client, INVITEE)
    page = await client.get("/account/organizations")
    assert page.status_code == 200 and page.text.count('class="make-active"') == 2
    csrf = csrf_from(page.text)
    chosen = await client.post(
        "/account/organizations/active", data={"csrf_token": csrf, "organization_id": other.id}
    )
    assert chosen.status_code == 303
    async with app.state.runtime.unit() as unit:
        assert (await unit.orgs.active_org(invitee.id)).id == other.id
    for hostile in (stranger.id, "x" * 36, "' OR 1=1 --", ""):
        refused = await client.post(
            "/account/organizations/active", data={"csrf_token": csrf, "organization_id": hostile}
        )
        assert refused.status_code == 404, hostile
    no_csrf = await client.post(f"/account/organizations/{other.id}/leave", data={"x": "1"})
    assert no_csrf.status_code == 403
    left = await client.post(f"/account/organizations/{other.id}/leave", data={"csrf_token": csrf})
    assert left.status_code == 303
    async with app.state.runtime.unit() as unit:
        assert not await unit.orgs.is_member(other.id, invitee.id)
        assert (await unit.orgs.active_org(invitee.id)).id == org  # the only one left
    gone = await client.post(f"/account/organizations/{other.id}/leave", data={"csrf_token": csrf})
    assert gone.status_code == 404
    # The last owner is told why they cannot leave, and stays.
    owner_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    )
    async with owner_client:
        await sign_in(owner_client, "owner@example.com")
        page = await owner_client.get("/account/organizations")
        refused = await owner_client.post(
            f"/account/organizations/{org}/leave", data={"csrf_token": csrf_from(page.text)}
        )
    assert refused.status_code == 409 and "last owner" in refused.text
    async with app.state.runtime.unit() as unit:
        assert await unit.orgs.is_member(org, owner.id)


async def test_dev_mail_is_not_served_outside_dev(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dev/mail")).status_code == 404
    assert (await client.get("/dev/mail?format=json")).status_code == 404


@pytest.fixture
async def dev_app(backend: Backend, tmp_path: Path, clock: Any) -> AsyncIterator[Any]:
    from ostiary.web.app import create_app

    application = create_app(make_settings(backend, tmp_path, dev_mode=True), clock=clock)
    yield application
    await application.state.runtime.close()


async def test_dev_mail_shows_the_invitation_and_its_link(dev_app: Any) -> None:
    org, _, _ = await _setup(dev_app)
    result = await dev_app.state.runtime.invite(org, INVITEE, ["member"], actor=None)
    assert result.mail == "sent"
    transport = httpx.ASGITransport(app=dev_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/dev/mail")
        data = (await client.get("/dev/mail?format=json")).json()
    assert page.status_code == 200 and "Invitation to join Acme &lt;Labs&gt;" in page.text
    [message] = data["messages"]
    assert message["to"] == INVITEE and message["links"] == [result.link]
    assert re.search(r'href="http://testserver/invitations/ost_inv_[\w-]+"', page.text)
    async with dev_app.state.runtime.unit() as unit:
        [sent] = (await unit.invitations.list_invitations(org))[0]
        assert sent.mail_status == "sent"


async def test_production_without_smtp_refuses_to_mail(app: Any) -> None:
    from ostiary.features.mail.models import MailNotConfigured

    org, _, _ = await _setup(app)
    with pytest.raises(MailNotConfigured):
        await app.state.runtime.invite(org, INVITEE, ["member"], actor=None)
    async with app.state.runtime.unit() as unit:
        assert (await unit.invitations.list_invitations(org))[0] == []  # nothing written


async def test_an_admin_invites_from_the_account_page(dev_app: Any) -> None:
    org, owner, invitee = await _setup(dev_app)
    async with dev_app.state.runtime.unit() as unit:
        plain = await unit.accounts.create_user("plain@example.com", PASSWORD)
        await unit.orgs.add_member(org, plain.id, actor=None)
        await unit.rbac.assign(org, ("user", plain.id), "member", actor=None)
    transport = httpx.ASGITransport(app=dev_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as admin:
        await sign_in(admin, "owner@example.com")
        page = await admin.get("/account/organizations")
        assert 'class="invite-form"' in page.text
        csrf = csrf_from(page.text)
        action = f"/account/organizations/{org}/invitations"
        sent = await admin.post(
            action, data={"csrf_token": csrf, "email": INVITEE, "role": "admin"}
        )
        assert sent.status_code == 303 and sent.headers["location"].endswith("notice=invited")
        for bad in ({"email": INVITEE, "role": "owner"}, {"email": INVITEE, "role": "x"}):
            refused = await admin.post(action, data={"csrf_token": csrf, **bad})
            assert refused.status_code == 400
        invalid = await admin.post(
            action, data={"csrf_token": csrf, "email": "not an address", "role": "member"}
        )
        assert invalid.status_code == 400 and "valid e-mail" in invalid.text
        stranger = await admin.post(
            "/account/organizations/00000000-0000-0000-0000-000000000000/invitations",
            data={"csrf_token": csrf, "email": INVITEE, "role": "member"},
        )
        assert stranger.status_code == 404
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as member:
        await sign_in(member, "plain@example.com")
        page = await member.get("/account/organizations")
        assert 'class="invite-form"' not in page.text
        forbidden = await member.post(
            f"/account/organizations/{org}/invitations",
            data={"csrf_token": csrf_from(page.text), "email": "x@example.com", "role": "member"},
        )
        assert forbidden.status_code == 403 and "members:manage" in forbidden.text
    async with dev_app.state.runtime.unit() as unit:
        refusals = (
            await unit.conn.execute(
                select(audit_events).where(
                    audit_events.c.action == "org.invitation.create",
                    audit_events.c.outcome == "failure",
                )
            )
        ).all()
    assert {(r.actor, r.details["code"]) for r in refusals} == {
        (owner.id, "invalid"),
        (plain.id, "forbidden"),
    }
    [message] = dev_app.state.runtime.dev_outbox.messages()
    assert message.message.to == INVITEE and "Olive invited you" in message.message.text
    async with dev_app.state.runtime.unit() as unit:
        [pending] = (await unit.invitations.list_invitations(org, status="pending"))[0]
        assert pending.roles == ("admin",) and pending.inviter_id == owner.id
        assert pending.email == invitee.email


async def test_the_invite_form_says_when_no_mail_can_be_sent(
    app: Any, client: httpx.AsyncClient
) -> None:
    org, _, _ = await _setup(app)
    await sign_in(client, "owner@example.com")
    page = await client.get("/account/organizations")
    refused = await client.post(
        f"/account/organizations/{org}/invitations",
        data={"csrf_token": csrf_from(page.text), "email": INVITEE, "role": "member"},
    )
    assert refused.status_code == 503 and "cannot send e-mail" in refused.text
