"""``ostiary roles``: built-in and custom roles of an organization (issue 12, section 2)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, load, print_json, print_page, run_tenancy
from ostiary.cli.orgs import CursorOpt, LimitOpt, OrgArg

__all__ = ["app", "role_dict"]

app = typer.Typer(help="Manage the roles of an organization.", no_args_is_help=True)

PermissionsOpt = Annotated[
    list[str], typer.Option("--permission", help="resource:action, or * (repeatable).")
]
IncludesOpt = Annotated[list[str], typer.Option("--include", help="A role it includes.")]
RoleArg = Annotated[str, typer.Argument(metavar="ROLE", help="Role name or id.")]


def role_dict(role: Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names or {}
    return {
        "id": role.id,
        "name": role.name,
        "builtin": role.builtin,
        "project_id": role.project_id,
        "description": role.description,
        "permissions": sorted(role.permissions),
        "includes": [names.get(i, i) for i in role.includes],
        "created_at": role.created_at.isoformat() if role.created_at else None,
        "updated_at": role.updated_at.isoformat() if role.updated_at else None,
    }


@app.command("create")
def roles_create(
    org: OrgArg,
    name: Annotated[str, typer.Option("--name", help="Role name (not a built-in one).")],
    permission: PermissionsOpt = [],  # noqa: B006 (typer reads the default; never mutated)
    include: IncludesOpt = [],  # noqa: B006
    project: Annotated[
        str | None, typer.Option("--project", help="Project id or slug: a project role.")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    json: JsonOpt = False,
) -> None:
    """Create a custom role (a role with no permission is allowed: policies may name it)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.rbac.create_role(
            found.id,
            name,
            permissions=permission,
            includes=include,
            project_id=project,
            description=description,
            actor=None,
        )

    role = run_tenancy(load(), work, json)
    if json:
        print_json(role_dict(role))
        return
    typer.echo(f"created role {role.name} ({role.id})")


@app.command("list")
def roles_list(
    org: OrgArg, limit: LimitOpt = 100, cursor: CursorOpt = None, json: JsonOpt = False
) -> None:
    """List roles: the built-in ones first, then custom roles by creation."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.rbac.list_roles(found.id, limit=limit, cursor=cursor)

    items, next_cursor = run_tenancy(load(), work, json)
    names = {role.id: role.name for role in items}

    def line(role: Any) -> str:
        kind = (
            "built-in"
            if role.builtin
            else (f"project {role.project_id}" if role.project_id else "custom")
        )
        granted = " ".join(sorted(role.permissions)) or "-"
        included = (
            f" includes {', '.join(names.get(i, i) for i in role.includes)}"
            if role.includes
            else ""
        )
        return f"{role.name:<20} {kind:<10} {granted}{included}"

    print_page(items, next_cursor, json, row=lambda r: role_dict(r, names), line=line)


@app.command("update")
def roles_update(
    org: OrgArg,
    role: RoleArg,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    permission: PermissionsOpt = [],  # noqa: B006
    clear_permissions: Annotated[
        bool, typer.Option("--clear-permissions", help="Leave it no permission of its own.")
    ] = False,
    include: IncludesOpt = [],  # noqa: B006
    clear_includes: Annotated[
        bool, typer.Option("--clear-includes", help="Make it include no role.")
    ] = False,
    description: Annotated[str | None, typer.Option("--description")] = None,
    json: JsonOpt = False,
) -> None:
    """Change a custom role: given --permission / --include lists replace the current ones.
    Whoever holds it (directly, via a group or an including role) is recomputed at once."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.rbac.update_role(
            found.id,
            role,
            name=name,
            description=description,
            permissions=[] if clear_permissions else (permission or None),
            includes=[] if clear_includes else (include or None),
            actor=None,
        )

    changed = run_tenancy(load(), work, json)
    if json:
        print_json(role_dict(changed))
        return
    typer.echo(f"updated role {changed.name}")


@app.command("delete")
def roles_delete(org: OrgArg, role: RoleArg, json: JsonOpt = False) -> None:
    """Delete a custom role with its assignments and the includes naming it."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        target = await unit.rbac.get_role(found.id, role)
        await unit.rbac.delete_role(found.id, target.id, actor=None)
        return target

    deleted = run_tenancy(load(), work, json)
    if json:
        print_json({"id": deleted.id, "name": deleted.name, "deleted": True})
        return
    typer.echo(f"deleted role {deleted.name}")
