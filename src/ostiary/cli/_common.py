"""What every command group shares: settings with the root ``--data-dir``, one event loop per
command with domain errors turned into one line and exit 2, ``--json`` output, private files."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ostiary.config import ConfigError, Settings, load_settings

__all__ = [
    "BeforeOpt",
    "JsonOpt",
    "PageLimitOpt",
    "SinceOpt",
    "UntilOpt",
    "fail",
    "load",
    "parse_time",
    "print_json",
    "root_options",
    "run",
    "run_tenancy",
    "write_private",
]

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="At or after this time (ISO 8601; UTC if bare).")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Before this time (ISO 8601; UTC if bare).")
]
# A page of a newest-first listing: --before the last entry (its number) of the previous one.
BeforeOpt = Annotated[
    int | None, typer.Option("--before", help="Older than this entry: the next page.")
]
PageLimitOpt = Annotated[
    int, typer.Option("--limit", min=1, max=1000, help="Entries, newest first.")
]

# Options of the root command for the command about to run, set by its callback on every
# invocation (``ostiary --data-dir D COMMAND``).
root_options: dict[str, Any] = {}


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time given to ``option`` (UTC when it names no offset); exit 2 otherwise."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T08:00:00+00:00)")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def load(**overrides: Any) -> Settings:
    """The settings of this invocation: a command's own option wins over the root
    ``--data-dir``, which wins over OSTIARY_DATA_DIR and .env."""
    data_dir = root_options.get("data_dir")
    if data_dir is not None:
        overrides.setdefault("data_dir", data_dir)
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def print_page(
    items: Sequence[T],
    next_cursor: str | None,
    json: bool,
    *,
    row: Callable[[T], Any],
    line: Callable[[T], str],
) -> None:
    """One page of a listing: ``{"items": [row(...)], "next_cursor"}`` under ``--json``;
    otherwise one line per item, then how to ask for the next page."""
    if json:
        print_json({"items": [row(item) for item in items], "next_cursor": next_cursor})
        return
    for item in items:
        typer.echo(line(item))
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


def run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(runtime)`` in one event loop; domain and config errors exit 2 with one line."""
    from ostiary.features.accounts.service import AccountError
    from ostiary.web.runtime import Runtime

    async def runner() -> T:
        runtime = Runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(runner())
    except (AccountError, ConfigError, LookupError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot reach a backing service: {exc}")
    except SQLAlchemyError as exc:
        first_line = str(exc.orig if isinstance(exc, DBAPIError) else exc).splitlines()[0]
        fail(f"database error ({first_line}); is the schema current? run `ostiary migrate`")


def run_tenancy(
    settings: Settings,
    work: Callable[[Any], Awaitable[T]],
    json: bool,
    *,
    action: str | None = None,
) -> T:
    """Run ``work(unit)`` for an organization or RBAC command, in one unit of work.

    A refused use case (``TenancyError``) leaves nothing of the attempt (``work`` runs in a
    savepoint), is audited as a failure of ``cli.<command>`` with its stable code, and exits 1
    with one line, or with ``{"error": code, "message": ...}`` under ``--json``.
    """
    from ostiary.features.orgs.models import TenancyError

    audited_as = action or "cli." + work.__qualname__.split(".", 1)[0]  # the command's function

    async def attempt(rt: Any) -> T:
        async with rt.unit() as unit:
            outcome = await unit.attempt(lambda: work(unit), action=audited_as)
        if isinstance(outcome, TenancyError):
            raise outcome
        result: T = outcome
        return result

    try:
        return run(settings, attempt)
    except TenancyError as exc:
        if json:
            print_json({"error": exc.code, "message": exc.message})
            raise typer.Exit(1) from None
        fail(f"{exc.message} ({exc.code})", 1)


def write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
