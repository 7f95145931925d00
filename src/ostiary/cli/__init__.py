"""The ``ostiary`` command: run the server and manage users, clients, keys,
organizations, roles, groups, service accounts, API keys and the audit trail.

Every command reads the same settings (``OSTIARY_*`` environment, ``.env``), so a CLI call and
a running server share state. Commands that print data accept ``--json``. The data directory is,
for every command, ``--data-dir`` if given (``ostiary --data-dir D COMMAND``, or
``ostiary dev --data-dir D``), else ``OSTIARY_DATA_DIR``, else ``./ostiary-data``.

One module per command group (ARCHITECTURE.md, "cli"); what they share is in ``_common``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ostiary import __version__
from ostiary.cli import (
    api_keys,
    audit,
    clients,
    config,
    groups,
    keys,
    models,
    orgs,
    policies,
    roles,
    server,
    service_accounts,
    users,
)
from ostiary.cli._common import root_options

__all__ = ["app", "main"]

app = typer.Typer(
    name="ostiary",
    help="Ostiary: identity and access for AI products (OAuth 2.1 / OpenID Connect provider).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(server.dev)
app.command()(server.serve)
app.command()(server.migrate)
app.command()(server.purge)
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(config.app, name="config")
app.add_typer(clients.app, name="clients")
app.add_typer(orgs.app, name="orgs")
app.add_typer(roles.app, name="roles")
app.add_typer(groups.app, name="groups")
app.add_typer(service_accounts.app, name="service-accounts")
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(models.app, name="models")
app.add_typer(policies.app, name="policies")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ostiary {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True)
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the SQLite database and secret key live, for any command "
            "(default OSTIARY_DATA_DIR, else ./ostiary-data).",
        ),
    ] = None,
) -> None:
    """Ostiary command line."""
    root_options["data_dir"] = data_dir


def main() -> None:
    app()
