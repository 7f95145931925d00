"""What the in-process CLI tests share: a migrated SQLite data directory the commands run on
(typer's CliRunner, the process's own ``OSTIARY_*`` variables set aside), running one command
and reading its ``--json`` output, creating the users and organizations a test starts from, and
a runtime over the same directory to check what the commands did."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

from ostiary import cli
from ostiary.config import Settings, load_settings

if TYPE_CHECKING:
    from ostiary.web.runtime import Runtime

T = TypeVar("T")
KEY = "q" * 43  # base64url of 32 bytes


@contextmanager
def migrated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[dict[str, str]]:
    """The environment of CLI commands on a fresh, migrated data directory: the data directory,
    the secret key and ``settings`` (``OSTIARY_*`` names). The process's own ``OSTIARY_*``
    variables are set aside meanwhile, so that none of them reaches a command."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OSTIARY_")}
    for name in saved:
        del os.environ[name]
    values = {
        "OSTIARY_DATA_DIR": str(tmp_path_factory.mktemp("cli") / "data"),
        "OSTIARY_SECRET_KEY": KEY,
        **settings,
    }
    try:
        assert run(values, "migrate").exit_code == 0
        yield values
    finally:
        os.environ.update(saved)


def run(env: dict[str, str], *args: str) -> Result:
    """``ostiary *args`` with ``env``; its exit code and output, whatever they are."""
    return CliRunner().invoke(cli.app, list(args), env=env)


def run_json(env: dict[str, str], *args: str, code: int = 0) -> Any:
    """``ostiary *args --json``, which must exit with ``code``: what it printed, parsed."""
    result = run(env, *args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def create_users(env: dict[str, str], *emails: str) -> None:
    for email in emails:
        assert run(env, "users", "create", "--email", email).exit_code == 0


def create_org(env: dict[str, str], name: str, owner: str) -> None:
    created = run(env, "orgs", "create", "--name", name, "--owner", owner)
    assert created.exit_code == 0, created.output


def add_member(env: dict[str, str], org: str, email: str, role: str) -> None:
    added = run(env, "orgs", "members", "add", org, "--email", email, "--role", role)
    assert added.exit_code == 0, added.output


def settings_of(env: dict[str, str]) -> Settings:
    """The settings the CLI's commands read from ``env``."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def on_runtime(env: dict[str, str], work: Callable[[Runtime], Awaitable[T]]) -> T:
    """``work`` done on a runtime over the commands' data directory, as a server would see it;
    the runtime is closed afterwards."""
    from ostiary.web.runtime import Runtime

    async def run_work() -> T:
        rt = Runtime(settings_of(env))
        try:
            return await work(rt)
        finally:
            await rt.close()

    return asyncio.run(run_work())
