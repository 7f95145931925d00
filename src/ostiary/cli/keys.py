"""``ostiary keys``: token signing keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, fail, load, print_json, run

__all__ = ["app"]

app = typer.Typer(help="Manage token signing keys.", no_args_is_help=True)


@app.command("list")
def keys_list(json: JsonOpt = False) -> None:
    """List signing keys with their state (next, active, retired, expired)."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.keys.describe()

    rows = run(load(), work)
    if json:
        print_json(rows)
        return
    if not rows:
        typer.echo(
            "no signing keys yet: `ostiary serve` creates the first (or `ostiary keys rotate`)"
        )
    for row in rows:
        typer.echo(
            f"{row['kid']}  {row['alg']:<6} {row['state']:<8} activates {row['activates_at']}"
        )


@app.command("rotate")
def keys_rotate(
    alg: Annotated[str, typer.Option("--alg", help="ES256, RS256 or EdDSA.")] = "ES256",
    lead: Annotated[
        int | None,
        typer.Option(
            "--lead-seconds",
            min=0,
            help="Seconds between publishing the key and signing with it "
            "(default OSTIARY_KEY_PUBLISH_LEAD_SECONDS).",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Add a new signing key: published in JWKS now, signing after the lead time."""
    from datetime import timedelta

    from ostiary.protocol.jose import SUPPORTED_ALGS

    if alg not in SUPPORTED_ALGS:
        fail(f"--alg must be one of {', '.join(SUPPORTED_ALGS)}")

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.keys.rotate(
                alg, lead=None if lead is None else timedelta(seconds=lead), actor="cli"
            )

    key = run(load(), work)
    data = {"kid": key.kid, "alg": key.alg, "activates_at": key.activates_at.isoformat()}
    if json:
        print_json(data)
        return
    typer.echo(f"new {key.alg} key {key.kid}: published now, signs from {data['activates_at']}")
