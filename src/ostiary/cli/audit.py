"""``ostiary audit``: the audit trail."""

from __future__ import annotations

from typing import Any

import typer

from ostiary.cli._common import JsonOpt, load, print_json, run

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
