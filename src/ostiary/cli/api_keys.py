"""``ostiary api-keys``: API keys of members and service accounts (issue 12, section 3). A
key is printed once, when created or rotated; only its HMAC is stored. ORG is an id or a
slug; ID a key id (the part after ``ost_sk_``, shown by ``list``). The CLI acts as the
operator (audited with no actor)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, fail, load, print_json, print_page, run_tenancy
from ostiary.cli.orgs import CursorOpt, LimitOpt, OrgArg, resolve_user

__all__ = ["app", "key_dict"]

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Key id.")]


def key_dict(key: Any) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": key.id,
        "organization_id": key.organization_id,
        "owner": {"type": key.owner_type, "id": key.owner_id},
        "name": key.name,
        "permissions": None if key.permissions is None else sorted(key.permissions),
        "models": list(key.models),
        "allowed_ips": list(key.allowed_ips),
        "created_at": when(key.created_at),
        "expires_at": when(key.expires_at),
        "last_used_at": when(key.last_used_at),
        "revoked_at": when(key.revoked_at),
        "rotation_overlap_until": when(key.previous_expires_at),
    }


@app.command("create")
def keys_create(
    service_account: Annotated[
        str | None, typer.Option("--service-account", help="Service account id (the owner).")
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Organization id or slug (with --user).")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="E-mail of a member (the owner; with --org).")
    ] = None,
    name: Annotated[str, typer.Option("--name")] = "",
    permission: Annotated[
        list[str] | None,
        typer.Option("--permission", help="Permission (repeatable); default: all of the owner's."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Allowed model (repeatable).")
    ] = None,
    allow_ip: Annotated[
        list[str] | None, typer.Option("--allow-ip", help="Allowed CIDR range (repeatable).")
    ] = None,
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", min=1, max=3650)
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create a key; it is printed once."""
    if (service_account is None) == (org is None or user is None) or (
        service_account is not None and (org is not None or user is not None)
    ):
        fail("give --service-account ID, or --org ORG with --user EMAIL")

    async def work(unit: Any) -> Any:
        if service_account is not None:
            account = await unit.api_keys.locate_service_account(service_account)
            org_id, owner = account.organization_id, ("service_account", account.id)
        else:
            assert org is not None
            assert user is not None
            org_id = (await unit.orgs.resolve(org)).id
            owner = ("user", (await resolve_user(unit, user)).id)
        return await unit.api_keys.create_key(
            org_id,
            owner,
            name=name,
            permissions=permission,
            models=model or (),
            allowed_ips=allow_ip,
            expires_in=timedelta(days=expires_in_days) if expires_in_days else None,
            actor=None,
        )

    issued = run_tenancy(load(), work, json)
    if json:
        print_json({**key_dict(issued.key), "key": issued.secret})
        return
    typer.echo(f"key id: {issued.key.id}")
    typer.echo(f"key (shown once): {issued.secret}")


@app.command("list")
def keys_list(
    org: OrgArg, limit: LimitOpt = 100, cursor: CursorOpt = None, json: JsonOpt = False
) -> None:
    """List an organization's keys, oldest first (revoked ones included)."""

    async def work(unit: Any) -> Any:
        found = await unit.orgs.resolve(org)
        return await unit.api_keys.list_keys(found.id, limit=limit, cursor=cursor)

    items, next_cursor = run_tenancy(load(), work, json)
    print_page(
        items,
        next_cursor,
        json,
        row=key_dict,
        line=lambda key: (
            f"{key.id}  {key.owner_type}:{key.owner_id}  {key.name:<24} "
            + ("revoked" if key.revoked_at else "active")
        ),
    )


@app.command("revoke")
def keys_revoke(key_id: IdArg, json: JsonOpt = False) -> None:
    """Revoke a key: every node refuses it from the next request on."""

    async def work(unit: Any) -> Any:
        key = await unit.api_keys.locate_key(key_id)
        await unit.api_keys.revoke_key(key.organization_id, key.id, actor=None)
        return key

    key = run_tenancy(load(), work, json)
    if json:
        print_json({"revoked": key.id, "organization_id": key.organization_id})
        return
    typer.echo(f"revoked key {key.id}")


@app.command("rotate")
def keys_rotate(
    key_id: IdArg,
    overlap_seconds: Annotated[
        int,
        typer.Option(
            "--overlap-seconds",
            min=0,
            max=30 * 86_400,
            help="How long the current secret keeps working (0: it stops now).",
        ),
    ] = 86_400,
    json: JsonOpt = False,
) -> None:
    """Give a key a new secret (printed once); the old one works for the overlap."""

    async def work(unit: Any) -> Any:
        key = await unit.api_keys.locate_key(key_id)
        return await unit.api_keys.rotate_key(
            key.organization_id, key.id, overlap=timedelta(seconds=overlap_seconds), actor=None
        )

    issued = run_tenancy(load(), work, json)
    if json:
        print_json({**key_dict(issued.key), "key": issued.secret})
        return
    typer.echo(f"key id: {issued.key.id}")
    typer.echo(f"new key (shown once): {issued.secret}")
