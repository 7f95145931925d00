"""``ostiary groups``: groups of an organization's members, holding roles (issue 12)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, load, print_json, print_page, run_tenancy
from ostiary.cli.orgs import CursorOpt, LimitOpt, OrgArg, resolve_user, role_names

__all__ = ["app"]

app = typer.Typer(help="Manage the groups of an organization.", no_args_is_help=True)

GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="Group name or id.")]
EmailOpt = Annotated[str, typer.Option("--email", help="A member's e-mail.")]


async def _group_dict(unit: Any, org_id: str, group: Any) -> dict[str, Any]:
    held = await unit.rbac.assignments_of(org_id, ("group", group.id))
    roles = [
        {
            "role": (await unit.rbac.get_role(org_id, a.role)).name,
            "role_id": a.role,
            "project_id": a.project_id,
        }
        for a in held
    ]
    members = []
    for user_id in await unit.rbac.group_members(org_id, group.id):
        user = await unit.accounts.get(user_id)
        members.append({"user_id": user_id, "email": user.email if user else None})
    return {
        "id": group.id,
        "name": group.name,
        "created_at": group.created_at.isoformat(),
        "roles": roles,
        "members": members,
    }


@app.command("create")
def groups_create(
    org: Annotated[str, typer.Argument(metavar="ORG", help="Organization id or slug.")],
    name: Annotated[str, typer.Option("--name", help="Group name.")],
    role: Annotated[list[str], typer.Option("--role", help="A role it holds.")] = [],  # noqa: B006
    json: JsonOpt = False,
) -> None:
    """Create a group holding roles."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        group = await unit.rbac.create_group(found.id, name, roles=role, actor=None)
        return await _group_dict(unit, found.id, group)

    data = run_tenancy(load(), work, json)
    if json:
        print_json(data)
        return
    typer.echo(f"created group {data['name']} ({data['id']})")


def _membership(add: bool) -> Any:
    def command(org: OrgArg, group: GroupArg, email: EmailOpt, json: JsonOpt = False) -> None:
        async def work(unit: Any) -> Any:
            found = await unit.orgs.resolve(org)
            user = await resolve_user(unit, email)
            change = unit.rbac.add_group_member if add else unit.rbac.remove_group_member
            await change(found.id, group, user.id, actor=None)
            return await _group_dict(unit, found.id, await unit.rbac.get_group(found.id, group))

        action = f"cli.groups_{'add' if add else 'remove'}_member"
        data = run_tenancy(load(), work, json, action=action)
        if json:
            print_json(data)
            return
        typer.echo(
            f"{'added' if add else 'removed'} {email} {'to' if add else 'from'} {data['name']}"
        )

    return command


app.command("add-member", help="Add an organization member to a group.")(_membership(True))
app.command("remove-member", help="Remove a member from a group.")(_membership(False))


@app.command("list")
def groups_list(
    org: OrgArg, limit: LimitOpt = 100, cursor: CursorOpt = None, json: JsonOpt = False
) -> None:
    """List groups with their roles and members."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        items, next_cursor = await unit.rbac.list_groups(found.id, limit=limit, cursor=cursor)
        return [await _group_dict(unit, found.id, g) for g in items], next_cursor

    rows, next_cursor = run_tenancy(load(), work, json)
    print_page(
        rows,
        next_cursor,
        json,
        row=lambda r: r,
        line=lambda r: (
            f"{r['id']}  {r['name']:<24} roles: {role_names(r)}; {len(r['members'])} member(s)"
        ),
    )


@app.command("delete")
def groups_delete(org: OrgArg, group: GroupArg, json: JsonOpt = False) -> None:
    """Delete a group with its memberships and role assignments."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        gone = await unit.rbac.get_group(found.id, group)
        await unit.rbac.delete_group(found.id, gone.id, actor=None)
        return gone

    gone = run_tenancy(load(), work, json)
    if json:
        print_json({"id": gone.id, "name": gone.name, "deleted": True})
        return
    typer.echo(f"deleted group {gone.name} ({gone.id})")
