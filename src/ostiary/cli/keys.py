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
    alg: Annotated[
        str | None,
        typer.Option(
            "--alg",
            help="ES256, RS256 or EdDSA: rotate that algorithm's key only (default: every "
            "algorithm in OSTIARY_SIGNING_ALGS).",
        ),
    ] = None,
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
    """Add a new signing key per algorithm: published in JWKS now, signing after the lead
    time. Tokens of the other algorithms keep their keys."""
    from datetime import timedelta

    settings = load()
    enabled = settings.tokens.signing_algs
    if alg is not None and alg not in enabled:
        fail(f"--alg must be one of {', '.join(enabled)} (OSTIARY_SIGNING_ALGS)")
    algs = [a for a in enabled if alg is None or a == alg]

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            wait = None if lead is None else timedelta(seconds=lead)
            return [await unit.keys.rotate(a, lead=wait, actor="cli") for a in algs]

    keys = run(settings, work)
    rows = [
        {"kid": key.kid, "alg": key.alg, "activates_at": key.activates_at.isoformat()}
        for key in keys
    ]
    if json:
        # One algorithm: the key itself (as before); all of them: a list.
        print_json(rows[0] if alg is not None else rows)
        return
    for row in rows:
        typer.echo(
            f"new {row['alg']} key {row['kid']}: published now, signs from {row['activates_at']}"
        )
