"""``ostiary policies``: Cedar policies of an organization, or deployment-wide ones with ORG
``*`` (issue 13, section 2). ``set`` validates before saving (a refusal carries Cedar's message
and the line), ``dry-run`` replays the recent decision log against a candidate, ``rollback``
makes an earlier version active again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ostiary.cli._common import (
    BeforeOpt,
    JsonOpt,
    PageLimitOpt,
    SinceOpt,
    UntilOpt,
    fail,
    load,
    parse_time,
    print_json,
    run_tenancy,
)

__all__ = ["app", "decision_dict", "version_dict"]

app = typer.Typer(help="Manage Cedar policies.", no_args_is_help=True)

OrgArg = Annotated[
    str, typer.Argument(metavar="ORG", help="Organization id or slug; * for deployment-wide.")
]
FileOpt = Annotated[Path, typer.Option("--file", help="Cedar policies (.cedar).")]
SchemaOpt = Annotated[
    Path | None,
    typer.Option("--schema", help="The organization's schema extension (.cedarschema)."),
]


def version_dict(version: Any, *, texts: bool = True) -> dict[str, Any]:
    data = {
        "organization_id": version.organization_id or None,
        "version": version.version,
        "note": version.note,
        "actor": version.actor,
        "created_at": version.created_at.isoformat(),
    }
    if texts:
        data["policies"] = version.policies
        data["schema"] = version.schema
    return data


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")


async def _org(unit: Any, org: str) -> str | None:
    return None if org == "*" else (await unit.orgs.resolve(org)).id


@app.command("set")
def policies_set(
    org: OrgArg,
    file: FileOpt,
    schema: SchemaOpt = None,
    note: Annotated[str, typer.Option("--note", help="Why (kept with the version).")] = "",
    json: JsonOpt = False,
) -> None:
    """Validate the policies (and schema extension) and make them the active version."""
    policies, extension = _read(file), _read(schema)

    async def work(unit: Any) -> Any:
        return await unit.policies.set(
            await _org(unit, org), policies, extension, note=note, actor=None
        )

    saved = run_tenancy(load(), work, json)
    if json:
        print_json(version_dict(saved, texts=False))
        return
    typer.echo(f"policies version {saved.version} is active")


@app.command("show")
def policies_show(
    org: OrgArg,
    versions: Annotated[
        bool, typer.Option("--versions", help="List the versions instead.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """The active policies, or the list of versions (newest first)."""

    async def work(unit: Any) -> Any:
        level = await _org(unit, org)
        if versions:
            return await unit.policies.versions(level)
        return await unit.policies.active(level)

    found = run_tenancy(load(), work, json)
    if versions:
        if json:
            print_json({"items": [version_dict(v, texts=False) for v in found]})
            return
        for version in found:
            typer.echo(f"v{version.version:<5} {version.created_at.isoformat()} {version.note}")
        return
    if json:
        print_json(version_dict(found) if found is not None else {"version": None})
        return
    if found is None:
        typer.echo("no policies")
        return
    typer.echo(f"// version {found.version}")
    typer.echo(found.policies)
    if found.schema:
        typer.echo(f"// schema extension of version {found.version}")
        typer.echo(found.schema)


@app.command("dry-run")
def policies_dry_run(
    org: OrgArg,
    file: FileOpt,
    schema: SchemaOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="Logged decisions to replay.")] = 1000,
    json: JsonOpt = False,
) -> None:
    """Which of the recent logged decisions would change under these policies."""
    if org == "*":
        fail("dry-run replays one organization's decisions: name the organization")
    policies, extension = _read(file), _read(schema)

    async def work(unit: Any) -> Any:
        level = await _org(unit, org)
        return await unit.policies.dry_run(level, policies, extension, limit=limit)

    replayed, changes = run_tenancy(load(), work, json)
    items = [
        {
            "decision_id": c.logged.id,
            "at": c.logged.at.isoformat(),
            "subject": c.logged.request.get("subject"),
            "action": c.logged.request.get("action", {}).get("name"),
            "resource": c.logged.request.get("resource"),
            "was": c.logged.decision,
            "would_be": c.now_allowed,
            "reason": c.reason,
        }
        for c in changes
    ]
    if json:
        print_json({"replayed": replayed, "changed": len(items), "changes": items})
        return
    typer.echo(f"replayed {replayed} decisions, {len(items)} would change")
    for item in items:
        was = "permit" if item["was"] else "deny"
        now = "permit" if item["would_be"] else "deny"
        resource = item["resource"] or {}
        typer.echo(
            f"#{item['decision_id']} {item['action']} on {resource.get('type')}:"
            f"{resource.get('id')}: {was} -> {now} ({item['reason']})"
        )


@app.command("rollback")
def policies_rollback(
    org: OrgArg,
    version: Annotated[int, typer.Option("--version", help="The version to restore.")],
    json: JsonOpt = False,
) -> None:
    """Make an earlier version active again (saved as the next version)."""

    async def work(unit: Any) -> Any:
        return await unit.policies.rollback(await _org(unit, org), version, actor=None)

    saved = run_tenancy(load(), work, json)
    if json:
        print_json(version_dict(saved, texts=False))
        return
    typer.echo(f"version {version} restored as version {saved.version}")


def decision_dict(logged: Any) -> dict[str, Any]:
    shown: dict[str, Any] = logged.shown()
    return {**shown, "at": logged.at.isoformat()}


@app.command("decisions")
def policies_decisions(
    org: Annotated[str, typer.Argument(metavar="ORG", help="Organization id or slug.")],
    denied: Annotated[bool, typer.Option("--denied", help="Only denies.")] = False,
    permitted: Annotated[bool, typer.Option("--permitted", help="Only permits.")] = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    before: BeforeOpt = None,
    limit: PageLimitOpt = 50,
    json: JsonOpt = False,
) -> None:
    """The organization's logged decisions, newest first (what the decision log kept)."""
    if denied and permitted:
        fail("--denied and --permitted exclude each other")
    allowed = False if denied else True if permitted else None
    window = (parse_time(since, "--since"), parse_time(until, "--until"))

    async def work(unit: Any) -> Any:
        level = (await unit.orgs.resolve(org)).id
        return await unit.policies.decisions(
            level, limit, before=before, allowed=allowed, since=window[0], until=window[1]
        )

    found = run_tenancy(load(), work, json)
    if json:
        print_json({"items": [decision_dict(d) for d in found]})
        return
    if not found:
        typer.echo("no decisions")
    for logged in found:
        item = decision_dict(logged)
        resource, subject = item["resource"], item["subject"]
        action = item["action"].get("name")
        outcome = "permit" if logged.decision else "deny"
        typer.echo(
            f"#{logged.id} {logged.at.isoformat(timespec='seconds')} {outcome} "
            f"{subject.get('type')}:{subject.get('id')} {action} "
            f"{resource.get('type')}:{resource.get('id')} ({logged.reason})"
        )
