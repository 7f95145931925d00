"""``ostiary audit``: the audit trail."""

from __future__ import annotations

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
    run,
    run_tenancy,
)

__all__ = ["app"]

app = typer.Typer(help="Inspect the audit trail.", no_args_is_help=True)


@app.command("verify")
def audit_verify(json: JsonOpt = False) -> None:
    """Check the audit trail's hash chain; exit 1 and name the first broken event if tampered."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.audit.verify()

    report = run(load(), work)
    if json:
        print_json(
            {"checked": report.checked, "intact": report.intact, "broken_at": report.broken_at}
        )
    elif report.intact:
        typer.echo(f"audit trail intact: {report.checked} event(s) verified")
    else:
        typer.echo(
            f"audit trail BROKEN at event {report.broken_at} "
            f"({report.checked} event(s) before it verified)"
        )
    if not report.intact:
        raise typer.Exit(1)


def event_dict(event: Any) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "organization_id": event.organization_id,
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "target": event.target,
        "ip": event.ip,
        "details": event.details,
    }


@app.command("list")
def audit_list(
    org: Annotated[
        str | None, typer.Option("--org", help="Only this organization's events (id or slug).")
    ] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action.")] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only this actor (user id or key:<id>).")
    ] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="success or failure.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    before: BeforeOpt = None,
    limit: PageLimitOpt = 50,
    json: JsonOpt = False,
) -> None:
    """The newest audit events (all, or one organization's), with filters."""
    from ostiary.features.audit.models import AuditQuery, Outcome

    outcomes: dict[str | None, Outcome | None] = {
        None: None,
        "success": "success",
        "failure": "failure",
    }
    if outcome not in outcomes:
        fail("--outcome: success or failure")
    window = (parse_time(since, "--since"), parse_time(until, "--until"))

    async def work(unit: Any) -> Any:  # an unknown organization: exit 1 (audited)
        org_id = None if org is None else (await unit.orgs.resolve(org)).id
        query = AuditQuery(org_id, before, action, actor, outcomes[outcome], *window)
        return await unit.audit.search(query, limit)

    events = run_tenancy(load(), work, json)
    if json:
        print_json({"items": [event_dict(e) for e in events]})
        return
    if not events:
        typer.echo("no events")
    for event in events:
        who = event.actor or "operator"
        where = f" org={event.organization_id}" if event.organization_id and org is None else ""
        target = f" {event.target}" if event.target else ""
        typer.echo(
            f"#{event.seq} {event.occurred_at.isoformat(timespec='seconds')} {event.action}"
            f" {event.outcome} by {who}{target}{where}"
        )
