"""``ostiary config``: the effective settings."""

from __future__ import annotations

import typer

from ostiary.cli._common import JsonOpt, load, print_json

__all__ = ["app"]

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
def config_show(json: JsonOpt = False) -> None:
    """Print the effective settings, secrets masked."""
    shown = load().masked()
    if json:
        print_json(shown)
        return
    for name, value in sorted(shown.items()):
        typer.echo(f"{name} = {value}")
