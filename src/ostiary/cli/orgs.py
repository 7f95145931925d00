"""``ostiary orgs``: organizations, their projects, members and invitations (issue 12). ORG is
an id or a slug; the CLI acts as the operator (audited with no actor) and needs no
permission."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, load, print_json, print_page, run_tenancy

__all__ = ["app", "org_dict", "resolve_user"]

app = typer.Typer(help="Manage organizations, projects and members.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects of an organization.", no_args_is_help=True)
members_app = typer.Typer(help="Members of an organization.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
app.add_typer(members_app, name="members")

OrgArg = Annotated[str, typer.Argument(metavar="ORG", help="Organization id or slug.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=500)]
CursorOpt = Annotated[str | None, typer.Option("--cursor", help="From a previous page.")]
RolesOpt = Annotated[list[str], typer.Option("--role", help="Role name or id (repeatable).")]
ProjectOpt = Annotated[
    str | None, typer.Option("--project", help="Project id or slug: roles in that project.")
]


def role_names(row: dict[str, Any]) -> str:
    """The roles of a member's or group's row, for a line of a listing ("-": none)."""
    return ", ".join(r["role"] for r in row["roles"]) or "-"


def org_dict(org: Any) -> dict[str, Any]:
    return {
        "id": org.id,
        "slug": org.slug,
        "name": org.name,
        "created_at": org.created_at.isoformat(),
        "updated_at": org.updated_at.isoformat(),
        "require_acr": org.require_acr,
        "plan": org.plan,
    }


def _project_dict(project: Any) -> dict[str, Any]:
    return {
        "id": project.id,
        "organization_id": project.organization_id,
        "slug": project.slug,
        "name": project.name,
        "created_at": project.created_at.isoformat(),
    }


async def resolve_user(unit: Any, email: str) -> Any:
    """The user with this e-mail, or the tenancy ``not_found``."""
    from ostiary.features.accounts.service import AccountError
    from ostiary.features.orgs.models import NotFound

    try:
        return await unit.accounts.get_by_email(email)
    except AccountError:
        raise NotFound("no user with that e-mail address") from None


async def member_dict(unit: Any, org_id: str, user: Any, project_id: str | None) -> dict[str, Any]:
    from ostiary.protocol.permissions import ALL, PERMISSIONS

    held = await unit.rbac.assignments_of(org_id, ("user", user.id))
    effective = await unit.rbac.effective_permissions(org_id, "user", user.id, project_id)
    names = {}
    for assignment in held:
        if assignment.role not in names:
            names[assignment.role] = (await unit.rbac.get_role(org_id, assignment.role)).name
    return {
        "user_id": user.id,
        "email": user.email,
        "roles": [
            {"role": names[a.role], "role_id": a.role, "project_id": a.project_id} for a in held
        ],
        "groups": [g.name for g in await unit.rbac.groups_of(org_id, user.id)],
        "effective_permissions": sorted(effective),
        "effective_permissions_expanded": sorted(PERMISSIONS)
        if ALL in effective
        else sorted(effective),
    }


# -- organizations ---------------------------------------------------------------------------


_PLAN_HELP = (
    "The organization's plan (free, pro, enterprise...: letters, digits, '.', '_', '-'), which "
    "policies see as principal.plan."
)


@app.command("create")
def orgs_create(
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    slug: Annotated[str | None, typer.Option("--slug", help="Default: from the name.")] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="E-mail of an existing user made its owner.")
    ] = None,
    plan: Annotated[str | None, typer.Option("--plan", help=_PLAN_HELP)] = None,
    json: JsonOpt = False,
) -> None:
    """Create an organization (optionally with its first owner and its plan)."""

    async def work(unit: Any) -> Any:
        user = await resolve_user(unit, owner) if owner else None
        org = await unit.orgs.create(name, slug=slug, actor=None)
        if plan is not None:
            org = await unit.orgs.update(org.id, plan=plan, actor=None)
        if user is not None:
            await unit.orgs.add_member(org.id, user.id, actor=None)
            await unit.rbac.assign(org.id, ("user", user.id), "owner", actor=None)
        return org

    org = run_tenancy(load(), work, json)
    if json:
        print_json(org_dict(org))
        return
    typer.echo(f"created organization {org.slug} ({org.id})")


@app.command("list")
def orgs_list(limit: LimitOpt = 100, cursor: CursorOpt = None, json: JsonOpt = False) -> None:
    """List organizations, oldest first."""

    async def work(unit: Any) -> Any:
        return await unit.orgs.list_orgs(limit=limit, cursor=cursor)

    items, next_cursor = run_tenancy(load(), work, json)
    print_page(
        items, next_cursor, json, row=org_dict, line=lambda o: f"{o.id}  {o.slug:<30} {o.name}"
    )


@app.command("show")
def orgs_show(org: OrgArg, json: JsonOpt = False) -> None:
    """Show one organization."""

    async def work(unit: Any) -> Any:
        return await unit.orgs.resolve(org)

    found = run_tenancy(load(), work, json)
    if json:
        print_json(org_dict(found))
        return
    typer.echo(f"{found.id}  {found.slug}  {found.name}  (created {found.created_at:%Y-%m-%d})")
    typer.echo(f"plan: {found.plan or 'none'}; require-acr: {found.require_acr or 'none'}")


@app.command("delete")
def orgs_delete(
    org: OrgArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    json: JsonOpt = False,
) -> None:
    """Delete an organization with its projects, memberships, roles and groups (users stay;
    the audit trail keeps its events)."""
    if not yes:
        from ostiary.cli._common import fail

        fail("deleting an organization cannot be undone: add --yes", 1)

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        await unit.orgs.delete(found.id, actor=None)
        return found

    gone = run_tenancy(load(), work, json)
    if json:
        print_json({"id": gone.id, "slug": gone.slug, "deleted": True})
        return
    typer.echo(f"deleted organization {gone.slug} ({gone.id})")


# -- projects --------------------------------------------------------------------------------


@projects_app.command("create")
def projects_create(
    org: OrgArg,
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    slug: Annotated[str | None, typer.Option("--slug", help="Default: from the name.")] = None,
    json: JsonOpt = False,
) -> None:
    """Create a project in an organization."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.orgs.create_project(found.id, name, slug=slug, actor=None)

    project = run_tenancy(load(), work, json)
    if json:
        print_json(_project_dict(project))
        return
    typer.echo(f"created project {project.slug} ({project.id})")


@projects_app.command("list")
def projects_list(
    org: OrgArg, limit: LimitOpt = 100, cursor: CursorOpt = None, json: JsonOpt = False
) -> None:
    """List an organization's projects."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.orgs.list_projects(found.id, limit=limit, cursor=cursor)

    items, next_cursor = run_tenancy(load(), work, json)
    print_page(
        items,
        next_cursor,
        json,
        row=_project_dict,
        line=lambda p: f"{p.id}  {p.slug:<30} {p.name}",
    )


@projects_app.command("update")
def projects_update(
    org: OrgArg,
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="Project id or slug.")],
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="New slug.")] = None,
    json: JsonOpt = False,
) -> None:
    """Rename a project or change its slug."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.orgs.update_project(found.id, project, name=name, slug=slug, actor=None)

    updated = run_tenancy(load(), work, json)
    if json:
        print_json(_project_dict(updated))
        return
    typer.echo(f"updated project {updated.slug} ({updated.id})")


@projects_app.command("delete")
def projects_delete(
    org: OrgArg,
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="Project id or slug.")],
    json: JsonOpt = False,
) -> None:
    """Delete a project with its roles and the role assignments made in it."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        gone = await unit.orgs.get_project(found.id, project)
        await unit.orgs.delete_project(found.id, gone.id, actor=None)
        return gone

    gone = run_tenancy(load(), work, json)
    if json:
        print_json({"id": gone.id, "slug": gone.slug, "deleted": True})
        return
    typer.echo(f"deleted project {gone.slug} ({gone.id})")


# -- members ---------------------------------------------------------------------------------


@members_app.command("add")
def members_add(
    org: OrgArg,
    email: Annotated[str, typer.Option("--email", help="An existing user's e-mail.")],
    role: RolesOpt,
    project: ProjectOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add an existing user to an organization at once, with roles (at least one)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        user = await resolve_user(unit, email)
        await unit.orgs.add_member(found.id, user.id, actor=None)
        principal = ("user", user.id)
        await unit.rbac.set_roles(found.id, principal, role, project_id=project, actor=None)
        return await member_dict(unit, found.id, user, None)

    if not role:
        from ostiary.cli._common import fail

        fail("give at least one --role (owner, admin, member, reader or a custom role)", 1)
    data = run_tenancy(load(), work, json)
    if json:
        print_json(data)
        return
    typer.echo(f"added {data['email']} with {', '.join(r['role'] for r in data['roles'])}")


@members_app.command("list")
def members_list(
    org: OrgArg,
    project: ProjectOpt = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    json: JsonOpt = False,
) -> None:
    """List members with their roles, groups and effective permissions (in the organization,
    or in one project with --project)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        project_id = (await unit.orgs.get_project(found.id, project)).id if project else None
        members, next_cursor = await unit.orgs.list_members(found.id, limit=limit, cursor=cursor)
        rows = []
        for membership in members:
            user = await unit.accounts.get(membership.user_id)
            if user is not None:
                rows.append(await member_dict(unit, found.id, user, project_id))
        return rows, next_cursor

    rows, next_cursor = run_tenancy(load(), work, json)
    print_page(
        rows,
        next_cursor,
        json,
        row=lambda r: r,
        line=lambda r: f"{r['user_id']}  {r['email']:<40} {role_names(r)}",
    )


@members_app.command("remove")
def members_remove(
    org: OrgArg,
    email: Annotated[str, typer.Option("--email", help="The member's e-mail.")],
    json: JsonOpt = False,
) -> None:
    """Remove a member with their roles and group memberships (never the last owner)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        user = await resolve_user(unit, email)
        await unit.orgs.remove_member(found.id, user.id, actor=None)
        return user

    user = run_tenancy(load(), work, json)
    if json:
        print_json({"user_id": user.id, "email": user.email, "removed": True})
        return
    typer.echo(f"removed {user.email}")


@members_app.command("set-roles")
def members_set_roles(
    org: OrgArg,
    email: Annotated[str, typer.Option("--email", help="The member's e-mail.")],
    role: RolesOpt = [],  # noqa: B006 (typer reads the default; never mutated)
    project: ProjectOpt = None,
    json: JsonOpt = False,
) -> None:
    """Make these the member's direct roles (in the organization, or in --project)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        user = await resolve_user(unit, email)
        principal = ("user", user.id)
        await unit.rbac.set_roles(found.id, principal, role, project_id=project, actor=None)
        return await member_dict(unit, found.id, user, None)

    data = run_tenancy(load(), work, json)
    if json:
        print_json(data)
        return
    roles = ", ".join(r["role"] for r in data["roles"]) or "no roles"
    typer.echo(f"{data['email']}: {roles}")


# -- settings, invitations -------------------------------------------------------------------

invitations_app = typer.Typer(help="Invitations by e-mail.", no_args_is_help=True)
app.add_typer(invitations_app, name="invitations")


@app.command("update")
def orgs_update(
    org: OrgArg,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="New slug.")] = None,
    require_acr: Annotated[
        str | None,
        typer.Option(
            "--require-acr",
            help="urn:ostiary:acr:mfa, phr, phrh (or 'none'): the sign-in class org-scoped "
            "clients need for this organization.",
        ),
    ] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help=_PLAN_HELP + " 'none' removes it.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Rename an organization, change its slug, set the acr its members must reach for
    org-scoped clients, or set its plan."""
    from ostiary.features.orgs.service import UNCHANGED

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        acr: Any = UNCHANGED
        if require_acr is not None:
            acr = None if require_acr.lower() == "none" else require_acr
        chosen: Any = UNCHANGED
        if plan is not None:
            chosen = None if plan.lower() == "none" else plan
        return await unit.orgs.update(
            found.id, name=name, slug=slug, require_acr=acr, plan=chosen, actor=None
        )

    updated = run_tenancy(load(), work, json)
    if json:
        print_json(org_dict(updated))
        return
    typer.echo(
        f"updated {updated.slug} ({updated.id}): name {updated.name!r}, "
        f"require-acr {updated.require_acr or 'none'}, plan {updated.plan or 'none'}"
    )


def invitation_dict(invitation: Any, now: Any = None) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "id": invitation.id,
        "organization_id": invitation.organization_id,
        "email": invitation.email,
        "roles": list(invitation.roles),
        "inviter_id": invitation.inviter_id,
        "status": invitation.status,
        "state": invitation.state(now or datetime.now(UTC)),
        "mail_status": invitation.mail_status,
        "created_at": invitation.created_at.isoformat(),
        "expires_at": invitation.expires_at.isoformat(),
        "ended_at": invitation.ended_at.isoformat() if invitation.ended_at else None,
        "accepted_by": invitation.accepted_by,
    }


def _run_invite(work: Any, json: bool, action: str) -> Any:
    """Run a runtime-level invitation command (two transactions and a mail between them):
    refusals exit 1 as ``run_tenancy``'s do, audited as failures of ``action``."""
    from ostiary.cli._common import fail, run
    from ostiary.features.mail.models import MailError
    from ostiary.features.orgs.models import TenancyError

    async def attempt(rt: Any) -> Any:
        try:
            return await work(rt)
        except TenancyError as exc:
            async with rt.unit() as unit:
                await unit.audit.record(
                    action, "failure", details={"code": exc.code, "reason": exc.message[:200]}
                )
            raise

    try:
        return run(load(), attempt)
    except TenancyError as exc:
        if json:
            print_json({"error": exc.code, "message": exc.message})
            raise typer.Exit(1) from None
        fail(f"{exc.message} ({exc.code})", 1)
    except MailError as exc:
        if json:
            print_json({"error": "mail_not_configured", "message": str(exc)})
            raise typer.Exit(1) from None
        fail(str(exc), 1)


def _print_invite(result: Any, json: bool) -> None:
    data = invitation_dict(result.invitation)
    data["mail"] = result.mail
    if result.mail != "sent":
        data["link"] = result.link
    if result.error:
        data["mail_error"] = result.error
    if json:
        print_json(data)
        return
    invitation = result.invitation
    typer.echo(f"invited {invitation.email} ({invitation.id}), expires {invitation.expires_at}")
    if result.mail == "sent":
        typer.echo("the invitation was sent by e-mail")
        return
    if result.mail == "failed":
        typer.echo(f"sending failed: {result.error}; re-send with `orgs invitations resend`")
    else:
        typer.echo("no mail server is configured (OSTIARY_SMTP_HOST): give the invitee this link")
    typer.echo(result.link)


@app.command("invite")
def orgs_invite(
    org: OrgArg,
    email: Annotated[str, typer.Option("--email", help="The address to invite.")],
    role: RolesOpt,
    json: JsonOpt = False,
) -> None:
    """Invite an e-mail address with roles (at least one). The link is mailed when
    OSTIARY_SMTP_HOST is set, and printed otherwise; re-inviting revokes the earlier one."""
    if not role:
        from ostiary.cli._common import fail

        fail("give at least one --role (owner, admin, member, reader or a custom role)", 1)

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            found = await unit.orgs.resolve(org)
        send = bool(rt.settings.smtp_host)  # a CLI process's dev outbox is nobody's inbox
        return await rt.invite(found.id, email, list(role), actor=None, send=send)

    _print_invite(_run_invite(work, json, "cli.orgs_invite"), json)


@invitations_app.command("list")
def invitations_list(
    org: OrgArg,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, accepted or revoked.")
    ] = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    json: JsonOpt = False,
) -> None:
    """List an organization's invitations, oldest first."""
    from ostiary.features.orgs.models import InvalidInput

    async def work(unit: Any) -> Any:
        if status not in (None, "pending", "accepted", "revoked"):
            raise InvalidInput("status must be pending, accepted or revoked")
        found = await unit.orgs.resolve(org)
        return await unit.invitations.list_invitations(
            found.id, status=status, limit=limit, cursor=cursor
        )

    items, next_cursor = run_tenancy(load(), work, json)
    print_page(
        [invitation_dict(i) for i in items],
        next_cursor,
        json,
        row=lambda r: r,
        line=lambda r: (
            f"{r['id']}  {r['email']:<40} {r['state']:<9} mail {r['mail_status']:<7}"
            f" {', '.join(r['roles'])}"
        ),
    )


@invitations_app.command("revoke")
def invitations_revoke(
    org: OrgArg,
    invitation_id: Annotated[str, typer.Argument(metavar="ID", help="The invitation's id.")],
    json: JsonOpt = False,
) -> None:
    """Withdraw a pending invitation: its link stops working."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.invitations.revoke(found.id, invitation_id, actor=None)

    revoked = run_tenancy(load(), work, json)
    if json:
        print_json(invitation_dict(revoked))
        return
    typer.echo(f"revoked the invitation of {revoked.email}")


@invitations_app.command("resend")
def invitations_resend(
    org: OrgArg,
    invitation_id: Annotated[str, typer.Argument(metavar="ID", help="The invitation's id.")],
    json: JsonOpt = False,
) -> None:
    """Issue a new link for a pending invitation (the old link stops working) and mail it,
    or print it when no mail server is configured."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            found = await unit.orgs.resolve(org)
        send = bool(rt.settings.smtp_host)
        return await rt.resend_invitation(found.id, invitation_id, actor=None, send=send)

    _print_invite(_run_invite(work, json, "cli.invitations_resend"), json)
