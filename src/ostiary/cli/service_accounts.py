"""``ostiary service-accounts``: non-human principals of an organization (issue 12, section
3). ORG is an id or a slug; ID a service account's id. The CLI acts as the operator (audited
with no actor) and needs no permission."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, load, print_json, print_page, run_tenancy
from ostiary.cli.orgs import CursorOpt, LimitOpt, OrgArg, RolesOpt

__all__ = ["account_dict", "app"]

app = typer.Typer(help="Manage service accounts of organizations.", no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Service account id.")]


def account_dict(account: Any) -> dict[str, Any]:
    return {
        "id": account.id,
        "organization_id": account.organization_id,
        "name": account.name,
        "description": account.description,
        "project_id": account.project_id,
        "disabled": account.disabled,
        "created_at": account.created_at.isoformat(),
    }


@app.command("create")
def accounts_create(
    org: OrgArg,
    name: Annotated[str, typer.Option("--name", help="Name, unique in the organization.")],
    project: Annotated[
        str | None, typer.Option("--project", help="Project id or slug it belongs to.")
    ] = None,
    role: RolesOpt = [],  # noqa: B006 (typer reads the default; never mutated)
    description: Annotated[str, typer.Option("--description")] = "",
    json: JsonOpt = False,
) -> None:
    """Create a service account, with roles (in its project, if it has one)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.api_keys.create_service_account(
            found.id, name, description=description, project=project, roles=role, actor=None
        )

    account = run_tenancy(load(), work, json)
    if json:
        print_json(account_dict(account))
        return
    typer.echo(account.id)


@app.command("list")
def accounts_list(
    org: OrgArg, limit: LimitOpt = 100, cursor: CursorOpt = None, json: JsonOpt = False
) -> None:
    """List an organization's service accounts, oldest first."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.api_keys.list_service_accounts(found.id, limit=limit, cursor=cursor)

    items, next_cursor = run_tenancy(load(), work, json)
    print_page(
        items,
        next_cursor,
        json,
        row=account_dict,
        line=lambda a: f"{a.id}  {a.name:<30} {'disabled' if a.disabled else 'enabled'}",
    )


@app.command("disable")
def accounts_disable(
    account_id: IdArg,
    enable: Annotated[bool, typer.Option("--enable", help="Enable it again instead.")] = False,
    json: JsonOpt = False,
) -> None:
    """Disable a service account: its keys stop working at once (``--enable`` undoes it)."""

    async def work(unit: Any) -> Any:
        account = await unit.api_keys.locate_service_account(account_id)
        return await unit.api_keys.set_service_account_disabled(
            account.organization_id, account.id, not enable, actor=None
        )

    account = run_tenancy(load(), work, json)
    if json:
        print_json(account_dict(account))
        return
    typer.echo(f"{'enabled' if enable else 'disabled'} service account {account.id}")


@app.command("delete")
def accounts_delete(account_id: IdArg, json: JsonOpt = False) -> None:
    """Delete a service account with its role assignments; its keys are revoked."""

    async def work(unit: Any) -> Any:
        account = await unit.api_keys.locate_service_account(account_id)
        await unit.api_keys.delete_service_account(account.organization_id, account.id, actor=None)
        return account

    account = run_tenancy(load(), work, json)
    if json:
        print_json({"deleted": account.id, "organization_id": account.organization_id})
        return
    typer.echo(f"deleted service account {account.id}")
