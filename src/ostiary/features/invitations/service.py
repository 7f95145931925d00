"""Invitations by e-mail to join an organization (issue 12, section 1).

- A member holding ``members:manage`` (or the CLI operator) invites an address with one or
  more organization-level roles. Granting ``owner`` takes an owner: an admin cannot invite
  someone above themselves.
- The token is 256 random bits with the prefix ``ost_inv_`` (RFC 6749 section 10.10 for the
  entropy of bearer secrets), stored only as HMAC-SHA256 under a key derived for this purpose
  (protocol/opaque_secrets.py; HKDF info ``ostiary/invitation``), so a database leak yields no
  usable link. It expires (OSTIARY_INVITATION_TTL_SECONDS) and is single-use.
- Re-inviting an address revokes its earlier pending invitation, under the organization's row
  lock, so one address has at most one pending invitation per organization.
- Accepting needs a signed-in account whose e-mail matches the invited address (case-
  insensitively: addresses are stored normalized). The membership, its roles and the spending
  of the token are one transaction; the token is spent by a compare-and-set from ``pending``,
  so of concurrent accepts exactly one wins and the others see ``accepted``.
- Every change is audited with its actor and organization; e-mail addresses are masked.
- Sending mail is not done here: the caller sends :meth:`InvitationService.message` after the
  transaction that created the invitation has committed (a slow mail server must not hold
  database locks), then records the outcome with :meth:`InvitationService.mail_sent`.
"""

from __future__ import annotations

import html
import uuid
from datetime import timedelta
from typing import Literal

from ostiary.features.accounts.models import normalize_email
from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.invitations.models import (
    Invitation,
    InvitationGone,
    IssuedInvitation,
    Status,
    WrongInvitee,
)
from ostiary.features.invitations.ports import InvitationStore
from ostiary.features.mail.models import MailMessage
from ostiary.features.orgs.models import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Organization,
    decode_cursor,
    encode_cursor,
)
from ostiary.features.orgs.service import MAX_PAGE, OrgService
from ostiary.features.rbac.models import OWNER
from ostiary.features.rbac.service import RbacService
from ostiary.protocol.masking import mask_email
from ostiary.protocol.opaque_secrets import new_secret, secret_digest

__all__ = ["MAX_ROLES", "TOKEN_PREFIX", "InvitationService", "check_email"]

TOKEN_PREFIX = "ost_inv_"  # noqa: S105 (a prefix for secret scanners)
MAX_ROLES = 20
_EMAIL_MAX = 320  # RFC 5321 section 4.5.3.1: 64 + 1 + 255
_TOKEN_MAX = 128


def check_email(value: str) -> str:
    """A normalized address (local@domain with a dot in the domain, no spaces or controls)."""
    email = normalize_email(value)
    local, at, domain = email.rpartition("@")
    if not (
        at
        and local
        and domain
        and "." in domain
        and len(email) <= _EMAIL_MAX
        and not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in email)
    ):
        raise InvalidInput("not a valid e-mail address")
    return email


class InvitationService:
    def __init__(
        self,
        store: InvitationStore,
        orgs: OrgService,
        rbac: RbacService,
        audit: AuditTrail,
        clock: Clock,
        *,
        pepper: bytes,
        ttl: timedelta,
    ) -> None:
        self._store = store
        self._orgs = orgs
        self._rbac = rbac
        self._audit = audit
        self._clock = clock
        self._pepper = pepper
        self._ttl = ttl

    async def _record(
        self,
        action: str,
        org_id: str,
        actor: str | None,
        target: str,
        outcome: Literal["success", "failure"] = "success",
        **details: object,
    ) -> None:
        await self._audit.record(
            action,
            outcome,
            actor=actor,
            target=target,
            details={"organization_id": org_id, **details},
        )

    def _digest(self, token: str) -> str:
        return secret_digest(self._pepper, token)

    async def _roles(
        self, org_id: str, refs: list[str], actor: str | None, authorized: bool
    ) -> tuple[str, ...]:
        if not refs:
            raise InvalidInput("give at least one role")
        if len(refs) > MAX_ROLES:
            raise InvalidInput(f"at most {MAX_ROLES} roles")
        ids: list[str] = []
        for ref in refs:
            role = await self._rbac.get_role(org_id, ref)
            if role.project_id is not None:
                raise InvalidInput(
                    f"role {role.name!r} belongs to a project; invite with organization roles"
                )
            if role.id not in ids:
                ids.append(role.id)
        if OWNER in ids and actor is not None and not authorized:
            held = await self._rbac.assignments_of(org_id, ("user", actor))
            if not any(a.role == OWNER and a.project_id is None for a in held):
                raise Forbidden("only an owner can invite an owner")
        return tuple(ids)

    # -- for the organization's admins -----------------------------------------------------

    async def create(
        self,
        org_id: str,
        email: str,
        roles: list[str],
        *,
        actor: str | None,
        authorized: bool = False,
    ) -> IssuedInvitation:
        """Invite ``email`` with ``roles`` (names or ids); revokes its pending invitation.
        ``actor`` (a user) must hold ``members:manage`` (and be an owner to invite an owner),
        unless ``authorized``: the caller checked it (the management API, whose callers may
        be API keys; ``actor`` is then who the audit trail names)."""
        await self._orgs.get(org_id)
        if actor is not None and not authorized:
            await self._rbac.require(org_id, ("user", actor), "members:manage")
        address = check_email(email)
        role_ids = await self._roles(org_id, roles, actor, authorized)
        await self._orgs.lock(org_id)  # one pending invitation per address, concurrently too
        now = self._clock.now()
        for earlier in await self._store.pending_for(org_id, address):
            if await self._store.end(org_id, earlier.id, "revoked", now):
                await self._record(
                    "org.invitation.revoke",
                    org_id,
                    actor,
                    earlier.id,
                    email=mask_email(address),
                    reason="reinvited",
                )
        token = new_secret(TOKEN_PREFIX)
        invitation = Invitation(
            id=str(uuid.uuid4()),
            organization_id=org_id,
            email=address,
            roles=role_ids,
            inviter_id=actor,
            status="pending",
            mail_status="unsent",
            created_at=now,
            expires_at=now + self._ttl,
        )
        await self._store.add(invitation, self._digest(token))
        await self._record(
            "org.invitation.create",
            org_id,
            actor,
            invitation.id,
            email=mask_email(address),
            roles=list(role_ids),
        )
        return IssuedInvitation(invitation, token)

    async def get(self, org_id: str, invitation_id: str) -> Invitation:
        found = await self._store.get(org_id, invitation_id) if len(invitation_id) <= 36 else None
        if found is None:
            raise NotFound("no such invitation")
        return found

    async def list_invitations(
        self,
        org_id: str,
        *,
        status: Status | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[Invitation], str | None]:
        await self._orgs.get(org_id)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
        items = await self._store.list_invitations(org_id, limit + 1, decode_cursor(cursor), status)
        if len(items) <= limit:
            return items, None
        items = items[:limit]
        return items, encode_cursor(items[-1].created_at, items[-1].id)

    async def revoke(
        self, org_id: str, invitation_id: str, *, actor: str | None, authorized: bool = False
    ) -> Invitation:
        if actor is not None and not authorized:
            await self._rbac.require(org_id, ("user", actor), "members:manage")
        found = await self.get(org_id, invitation_id)
        if not await self._store.end(org_id, found.id, "revoked", self._clock.now()):
            raise Conflict(f"the invitation is {found.state(self._clock.now())}, not pending")
        await self._record(
            "org.invitation.revoke", org_id, actor, found.id, email=mask_email(found.email)
        )
        return await self.get(org_id, found.id)

    async def reissue(
        self, org_id: str, invitation_id: str, *, actor: str | None, authorized: bool = False
    ) -> IssuedInvitation:
        """A new token (and a fresh expiry) for a pending invitation, to send again: the
        first token is not kept anywhere, so a re-send is a new link; the old one stops."""
        if actor is not None and not authorized:
            await self._rbac.require(org_id, ("user", actor), "members:manage")
        found = await self.get(org_id, invitation_id)
        if found.status != "pending":
            raise Conflict(f"the invitation is {found.status}, not pending")
        token = new_secret(TOKEN_PREFIX)
        expires_at = self._clock.now() + self._ttl
        if not await self._store.reissue(org_id, found.id, self._digest(token), expires_at):
            raise Conflict("the invitation is no longer pending")
        await self._record(
            "org.invitation.reissue", org_id, actor, found.id, email=mask_email(found.email)
        )
        return IssuedInvitation(await self.get(org_id, found.id), token)

    async def mail_sent(
        self, invitation: Invitation, *, actor: str | None, error: str | None = None
    ) -> None:
        """Record the outcome of sending ``invitation``'s message (after the fact, in a
        transaction of its own): audited, and kept on the invitation for the listing."""
        org_id = invitation.organization_id
        await self._store.set_mail_status(org_id, invitation.id, "failed" if error else "sent")
        details: dict[str, object] = {"email": mask_email(invitation.email)}
        if error:
            details["reason"] = error[:200]
        await self._record(
            "org.invitation.mail",
            org_id,
            actor,
            invitation.id,
            "failure" if error else "success",
            **details,
        )

    # -- for the invitee -------------------------------------------------------------------

    async def lookup(self, token: str) -> tuple[Invitation, Organization]:
        """The invitation a link names and its organization, whatever its state (the page
        says what can be done); ``InvitationGone("unknown")`` for a token we did not issue."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > _TOKEN_MAX:
            raise InvitationGone("unknown")
        found = await self._store.get_by_token_hash(self._digest(token))
        if found is None:
            raise InvitationGone("unknown")
        return found, await self._orgs.get(found.organization_id)

    async def accept(self, token: str, *, user_id: str, user_email: str) -> Invitation:
        """Join the organization with the invited roles and spend the token, atomically."""
        found, org = await self.lookup(token)
        now = self._clock.now()
        state = found.state(now)
        if state != "pending":
            await self._refused(found, user_id, state)
            raise InvitationGone(state)
        if normalize_email(user_email) != found.email:
            await self._refused(found, user_id, "wrong_email")
            raise WrongInvitee(
                "This invitation was sent to another e-mail address. Sign in with the "
                "account of the invited address."
            )
        await self._orgs.lock(org.id)
        if await self._orgs.is_member(org.id, user_id):
            raise Conflict("You are already a member of this organization.")
        if not await self._store.end(
            org.id, found.id, "accepted", now, accepted_by=user_id, unexpired_at=now
        ):
            current = await self.get(org.id, found.id)
            reason = current.state(now)
            raise InvitationGone("accepted" if reason == "pending" else reason)
        await self._orgs.add_member(org.id, user_id, actor=user_id)
        await self._rbac.set_roles(org.id, ("user", user_id), list(found.roles), actor=user_id)
        await self._record(
            "org.invitation.accept",
            org.id,
            user_id,
            found.id,
            email=mask_email(found.email),
            roles=list(found.roles),
        )
        return await self.get(org.id, found.id)

    async def _refused(self, found: Invitation, user_id: str, reason: str) -> None:
        await self._record(
            "org.invitation.accept",
            found.organization_id,
            user_id,
            found.id,
            "failure",
            reason=reason,
        )

    # -- the message -----------------------------------------------------------------------

    @staticmethod
    def message(
        issued: IssuedInvitation, org: Organization, link: str, *, inviter: str | None
    ) -> MailMessage:
        """The invitation e-mail: who invites (the organization, and the inviter's name when
        known), the link, and when it expires."""
        invitation = issued.invitation
        by = f"{inviter} invited you" if inviter else "You have been invited"
        expires = invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f"{by} to join the organization {org.name}.\n\n"
            f"Open this link to accept (you will be asked to sign in):\n{link}\n\n"
            f"The link works once and expires on {expires}. If you did not expect this "
            "invitation, ignore this message.\n"
        )
        e = html.escape
        page = (
            f"<p>{e(by)} to join the organization <strong>{e(org.name)}</strong>.</p>"
            f'<p><a href="{e(link)}">Accept the invitation</a></p>'
            f"<p>The link works once and expires on {e(expires)}. If you did not expect this "
            "invitation, ignore this message.</p>"
        )
        return MailMessage(
            to=invitation.email,
            subject=f"Invitation to join {org.name}"[:200],
            text=text,
            html=page,
        )
