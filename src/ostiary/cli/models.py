"""``ostiary models``: the model catalog, deployment-wide or per organization (issue 13,
section 1)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, load, print_json, run_tenancy

__all__ = ["app", "model_dict"]

app = typer.Typer(help="Manage the model catalog.", no_args_is_help=True)

OrgOpt = Annotated[
    str | None,
    typer.Option("--org", help="Organization id or slug; without it, deployment-wide."),
]
IdOpt = Annotated[str, typer.Option("--id", help="Model id, e.g. gpt-large.")]
AttrOpt = Annotated[
    list[str],
    typer.Option(
        "--attr",
        help="name=value (repeatable): an integer, true/false, a comma list, or a string.",
    ),
]


def model_dict(entry: Any) -> dict[str, Any]:
    return {
        "id": entry.model_id,
        "organization_id": entry.organization_id or None,
        "attributes": entry.attributes,
        "created_at": entry.created_at.isoformat(),
        "updated_at": entry.updated_at.isoformat(),
    }


def _attributes(pairs: list[str]) -> dict[str, Any]:
    from ostiary.features.models.service import parse_attribute

    return dict(parse_attribute(pair) for pair in pairs)


async def _org(unit: Any, org: str | None) -> str | None:
    return None if org is None else (await unit.orgs.resolve(org)).id


@app.command("create")
def models_create(
    model_id: IdOpt,
    org: OrgOpt = None,
    attr: AttrOpt = [],  # noqa: B006 (typer reads the default; never mutated)
    json: JsonOpt = False,
) -> None:
    """Add a model to the catalog with its attributes."""

    async def work(unit: Any) -> Any:
        return await unit.models.create(
            await _org(unit, org), model_id, _attributes(attr), actor=None
        )

    entry = run_tenancy(load(), work, json)
    if json:
        print_json(model_dict(entry))
        return
    typer.echo(f"created model {entry.model_id}")


@app.command("update")
def models_update(
    model_id: IdOpt,
    org: OrgOpt = None,
    attr: AttrOpt = [],  # noqa: B006
    json: JsonOpt = False,
) -> None:
    """Replace the attributes of a model."""

    async def work(unit: Any) -> Any:
        return await unit.models.update(
            await _org(unit, org), model_id, _attributes(attr), actor=None
        )

    entry = run_tenancy(load(), work, json)
    if json:
        print_json(model_dict(entry))
        return
    typer.echo(f"updated model {entry.model_id}")


@app.command("delete")
def models_delete(model_id: IdOpt, org: OrgOpt = None, json: JsonOpt = False) -> None:
    """Remove a model from the catalog."""

    async def work(unit: Any) -> Any:
        await unit.models.delete(await _org(unit, org), model_id, actor=None)

    run_tenancy(load(), work, json)
    if json:
        print_json({"id": model_id, "deleted": True})
        return
    typer.echo(f"deleted model {model_id}")


@app.command("list")
def models_list(
    org: OrgOpt = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    after: Annotated[str | None, typer.Option("--after", help="Model id to start after.")] = None,
    json: JsonOpt = False,
) -> None:
    """List the models of one level (an organization's, or the deployment-wide ones)."""

    async def work(unit: Any) -> Any:
        return await unit.models.list(await _org(unit, org), limit=limit, after=after)

    items, next_after = run_tenancy(load(), work, json)
    if json:
        print_json({"items": [model_dict(e) for e in items], "next_after": next_after})
        return
    for entry in items:
        attrs = " ".join(f"{k}={v}" for k, v in sorted(entry.attributes.items())) or "-"
        typer.echo(f"{entry.model_id:<30} {attrs}")
    if next_after:
        typer.echo(f"more: --after {next_after}")
