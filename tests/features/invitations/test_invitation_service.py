"""features/invitations/service.py over the real SQL stores (SQLite; PostgreSQL + Redis when
configured): issuing, the token at rest, accepting (e-mail match, roles, single use under
concurrency), expiry on a fixed clock, revocation and re-invitation, tenancy and auditing."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ostiary.features.invitations.models import InvitationGone, WrongInvitee
from ostiary.features.orgs.models import Conflict, Forbidden, InvalidInput, NotFound
from ostiary.storage.sqla.tables import audit_events, org_invitations


async def _user(runtime: Any, email: str | None = None) -> Any:
    async with runtime.unit() as unit:
        return await unit.accounts.create_user(
            email or f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )


async def _org_with_owner(runtime: Any) -> tuple[str, str]:
    owner = await _user(runtime)
    async with runtime.unit() as unit:
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        await unit.orgs.add_member(org.id, owner.id, actor=None)
        await unit.rbac.assign(org.id, ("user", owner.id), "owner", actor=None)
    return org.id, owner.id


async def _invite(runtime: Any, org: str, email: str, roles: list[str], actor: Any = None) -> Any:
    async with runtime.unit() as unit:
        return await unit.invitations.create(org, email, roles, actor=actor)


async def test_accept_adds_the_member_with_the_roles_and_spends_the_token(runtime: Any) -> None:
    org, owner = await _org_with_owner(runtime)
    invitee = await _user(runtime, "Ada.Lovelace@Example.com")
    issued = await _invite(runtime, org, "ADA.lovelace@example.COM", ["member", "reader"], owner)
    assert issued.token.startswith("ost_inv_") and len(issued.token) > 40
    assert issued.invitation.email == "ada.lovelace@example.com"
    async with runtime.unit() as unit:
        stored = (await unit.conn.execute(select(org_invitations))).one()
        assert issued.token not in str(tuple(stored))  # only its HMAC is kept
        assert stored.token_hash != issued.token and len(stored.token_hash) == 64
    async with runtime.unit() as unit:
        accepted = await unit.invitations.accept(
            issued.token, user_id=invitee.id, user_email="ada.lovelace@EXAMPLE.com"
        )
    assert accepted.status == "accepted" and accepted.accepted_by == invitee.id
    async with runtime.unit() as unit:
        assert await unit.orgs.is_member(org, invitee.id)
        held = sorted(a.role for a in await unit.rbac.assignments_of(org, ("user", invitee.id)))
        assert held == ["member", "reader"]
    # Replay: the spent token says so and changes nothing.
    async with runtime.unit() as unit:
        with pytest.raises(InvitationGone) as replay:
            await unit.invitations.accept(
                issued.token, user_id=invitee.id, user_email=invitee.email
            )
    assert replay.value.reason == "accepted"


async def test_a_different_email_is_refused_and_the_invitation_stays_usable(
    runtime: Any,
) -> None:
    org, _ = await _org_with_owner(runtime)
    stranger = await _user(runtime)
    invitee = await _user(runtime)
    issued = await _invite(runtime, org, invitee.email, ["member"])
    async with runtime.unit() as unit:
        with pytest.raises(WrongInvitee) as wrong:
            await unit.invitations.accept(
                issued.token, user_id=stranger.id, user_email=stranger.email
            )
    assert wrong.value.code == "wrong_email"
    async with runtime.unit() as unit:
        assert not await unit.orgs.is_member(org, stranger.id)
        await unit.invitations.accept(issued.token, user_id=invitee.id, user_email=invitee.email)
        assert await unit.orgs.is_member(org, invitee.id)


async def test_an_expired_invitation_cannot_be_accepted(runtime: Any, clock: Any) -> None:
    org, _ = await _org_with_owner(runtime)
    invitee = await _user(runtime)
    issued = await _invite(runtime, org, invitee.email, ["member"])
    ttl = timedelta(seconds=runtime.settings.invitation_ttl_seconds)
    assert issued.invitation.expires_at - issued.invitation.created_at == ttl
    clock.advance(ttl)  # the first instant it is no longer valid
    async with runtime.unit() as unit:
        with pytest.raises(InvitationGone) as gone:
            await unit.invitations.accept(
                issued.token, user_id=invitee.id, user_email=invitee.email
            )
        assert gone.value.reason == "expired"
        assert not await unit.orgs.is_member(org, invitee.id)


async def test_unknown_and_hostile_tokens_are_unknown(runtime: Any) -> None:
    invitee = await _user(runtime)
    async with runtime.unit() as unit:
        for token in ("", "ost_inv_", "ost_inv_" + "A" * 43, "x" * 10_000, "ost_inv_\x00';--"):
            with pytest.raises(InvitationGone) as gone:
                await unit.invitations.accept(token, user_id=invitee.id, user_email=invitee.email)
            assert gone.value.reason == "unknown"


async def test_revoked_and_reinvited(runtime: Any) -> None:
    org, owner = await _org_with_owner(runtime)
    invitee = await _user(runtime)
    first = await _invite(runtime, org, invitee.email, ["reader"], owner)
    second = await _invite(runtime, org, invitee.email.upper(), ["member"], owner)
    async with runtime.unit() as unit:
        assert (await unit.invitations.get(org, first.invitation.id)).status == "revoked"
        with pytest.raises(InvitationGone) as gone:
            await unit.invitations.accept(first.token, user_id=invitee.id, user_email=invitee.email)
        assert gone.value.reason == "revoked"
    async with runtime.unit() as unit:
        revoked = await unit.invitations.revoke(org, second.invitation.id, actor=owner)
        assert revoked.status == "revoked"
        with pytest.raises(Conflict):
            await unit.invitations.revoke(org, second.invitation.id, actor=owner)
    async with runtime.unit() as unit:
        with pytest.raises(InvitationGone) as gone:
            await unit.invitations.accept(
                second.token, user_id=invitee.id, user_email=invitee.email
            )
        assert gone.value.reason == "revoked"
        items, _ = await unit.invitations.list_invitations(org)
        assert [i.status for i in items] == ["revoked", "revoked"]
        rows = (
            await unit.conn.execute(
                select(audit_events).where(audit_events.c.action.like("org.invitation.%"))
            )
        ).all()
    assert [(r.action, r.outcome) for r in rows] == [
        ("org.invitation.create", "success"),
        ("org.invitation.revoke", "success"),  # re-invited: the first one goes
        ("org.invitation.create", "success"),
        ("org.invitation.accept", "failure"),
        ("org.invitation.revoke", "success"),
        ("org.invitation.accept", "failure"),
    ]
    for row in rows:
        assert row.details["organization_id"] == org
        assert invitee.email not in str(row.details)  # masked


async def test_concurrent_accepts_exactly_one_wins(runtime: Any) -> None:
    org, _ = await _org_with_owner(runtime)
    invitee = await _user(runtime)
    issued = await _invite(runtime, org, invitee.email, ["member"])
    started = asyncio.Barrier(4)

    async def accept() -> Any:
        async with runtime.unit() as unit:
            await started.wait()
            return await unit.invitations.accept(
                issued.token, user_id=invitee.id, user_email=invitee.email
            )

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(accept() for _ in range(4)), return_exceptions=True), timeout=30
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 1, outcomes
    assert all(isinstance(o, InvitationGone | Conflict) for o in outcomes if o not in won)
    async with runtime.unit() as unit:
        members, _ = await unit.orgs.list_members(org)
        assert sum(m.user_id == invitee.id for m in members) == 1


async def test_who_may_invite_and_with_what(runtime: Any) -> None:
    org, owner = await _org_with_owner(runtime)
    admin, plain = await _user(runtime), await _user(runtime)
    async with runtime.unit() as unit:
        for user, role in ((admin, "admin"), (plain, "member")):
            await unit.orgs.add_member(org, user.id, actor=None)
            await unit.rbac.assign(org, ("user", user.id), role, actor=None)
    async with runtime.unit() as unit:
        with pytest.raises(Forbidden):
            await unit.invitations.create(org, "x@example.com", ["member"], actor=plain.id)
        with pytest.raises(Forbidden):  # an admin cannot make an owner
            await unit.invitations.create(org, "x@example.com", ["owner"], actor=admin.id)
        await unit.invitations.create(org, "x@example.com", ["admin"], actor=admin.id)
        await unit.invitations.create(org, "y@example.com", ["owner"], actor=owner)
        for email in ("no-at", "a@b", "a b@example.com", "a@exa\nmple.com", "x" * 400 + "@a.io"):
            with pytest.raises(InvalidInput):
                await unit.invitations.create(org, email, ["member"], actor=None)
        with pytest.raises(InvalidInput):
            await unit.invitations.create(org, "z@example.com", [], actor=None)
        with pytest.raises(NotFound):
            await unit.invitations.create(org, "z@example.com", ["no-such-role"], actor=None)
        with pytest.raises(NotFound):
            await unit.invitations.create("nope", "z@example.com", ["member"], actor=None)


async def test_invitations_are_scoped_by_organization(runtime: Any) -> None:
    acme, _ = await _org_with_owner(runtime)
    other, _ = await _org_with_owner(runtime)
    issued = await _invite(runtime, acme, "a@example.com", ["member"])
    async with runtime.unit() as unit:
        with pytest.raises(NotFound):
            await unit.invitations.get(other, issued.invitation.id)
        with pytest.raises(NotFound):
            await unit.invitations.revoke(other, issued.invitation.id, actor=None)
        assert (await unit.invitations.list_invitations(other))[0] == []
        assert (await unit.invitations.get(acme, issued.invitation.id)).status == "pending"


async def test_reissue_replaces_the_token(runtime: Any) -> None:
    org, _ = await _org_with_owner(runtime)
    invitee = await _user(runtime)
    first = await _invite(runtime, org, invitee.email, ["member"])
    async with runtime.unit() as unit:
        again = await unit.invitations.reissue(org, first.invitation.id, actor=None)
    assert again.token != first.token and again.invitation.id == first.invitation.id
    async with runtime.unit() as unit:
        with pytest.raises(InvitationGone):
            await unit.invitations.accept(first.token, user_id=invitee.id, user_email=invitee.email)
        await unit.invitations.accept(again.token, user_id=invitee.id, user_email=invitee.email)


async def test_an_existing_member_is_told_so(runtime: Any) -> None:
    org, owner = await _org_with_owner(runtime)
    async with runtime.unit() as unit:
        owner_user = await unit.accounts.get(owner)
    issued = await _invite(runtime, org, owner_user.email, ["member"])
    async with runtime.unit() as unit:
        with pytest.raises(Conflict):
            await unit.invitations.accept(issued.token, user_id=owner, user_email=owner_user.email)
    async with runtime.unit() as unit:  # the owner kept their role
        held = [a.role for a in await unit.rbac.assignments_of(org, ("user", owner))]
        assert held == ["owner"]


async def test_purge_drops_invitations_a_week_after_they_ended_or_expired(
    runtime: Any, clock: Any
) -> None:
    org, _ = await _org_with_owner(runtime)
    invitee = await _user(runtime)
    pending = await _invite(runtime, org, "p@example.com", ["member"])
    accepted = await _invite(runtime, org, invitee.email, ["member"])
    async with runtime.unit() as unit:
        await unit.invitations.accept(accepted.token, user_id=invitee.id, user_email=invitee.email)
    clock.advance(timedelta(days=7, seconds=1))
    deleted = await runtime.purge_expired()
    assert (deleted["invitations"], deleted["ended_invitations"]) == (0, 1)
    clock.advance(timedelta(seconds=runtime.settings.invitation_ttl_seconds))
    deleted = await runtime.purge_expired()
    assert deleted["invitations"] == 1
    async with runtime.unit() as unit:
        assert (await unit.conn.execute(select(org_invitations))).all() == []
        with pytest.raises(NotFound):
            await unit.invitations.get(org, pending.invitation.id)
