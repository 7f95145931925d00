"""Process harness for the end-to-end tests: a real ``ostiary dev`` subprocess and CLI runs.

Everything here talks to Ostiary from the outside only: a subprocess started with
``sys.executable -m ostiary``, HTTP over a real socket, and the same ``OSTIARY_*`` environment
for the CLI, so that CLI calls and the server share the database, the secret key and Redis.

``OSTIARY_TEST_DATABASE_URL`` / ``OSTIARY_TEST_REDIS_URL`` add a ``postgres`` backend: a fresh
PostgreSQL database per server (dropped afterwards) and a Redis database index of its own
(flushed first). Set but unreachable is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.redis_lease import E2E_INDEXES, lease_redis_database

__all__ = [
    "BACKENDS",
    "CLI_TIMEOUT_S",
    "Server",
    "ServerFactory",
    "base_env",
    "free_port",
    "run_cli",
    "running_server",
]

TEST_DATABASE_URL = os.environ.get("OSTIARY_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("OSTIARY_TEST_REDIS_URL")
BACKENDS = ["sqlite", *(["postgres"] if TEST_DATABASE_URL else [])]

READY_TIMEOUT_S = 60.0  # generous: CI machines are often busy; a healthy start takes ~3 s
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 90.0

_ADMIN_EMAIL = re.compile(r"Admin e-mail:\s+(\S+)")
_ADMIN_PASSWORD = re.compile(r"Admin password:\s+(\S+)")


# Several CLI commands in one process (``Server.cli_many``): [[args, stdin], ...] on stdin,
# [[exit code, stdout, stderr], ...] on stdout.
_CLI_MANY = """
import json, sys
from typer.testing import CliRunner
from ostiary.cli import app
runner = CliRunner()
answers = []
for args, stdin in json.loads(sys.stdin.read()):
    result = runner.invoke(app, args, input=stdin)
    answers.append([result.exit_code, result.stdout, result.stderr])
sys.stdout.write(json.dumps(answers))
"""


def base_env() -> dict[str, str]:
    """The inherited environment without any ``OSTIARY_*`` variable, plus unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
    env["PYTHONUNBUFFERED"] = "1"
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        # Every subprocess would compile the whole import graph again (~1 s each); cache the
        # bytecode outside the repository and the virtualenv instead.
        env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "ostiary-e2e-pyc"))
    return env


def run_cli(
    env: Mapping[str, str],
    *args: str,
    cwd: Path,
    stdin: str | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ostiary ARGS`` with exactly ``env``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "ostiary", *args],
        env=dict(env),
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A port free now. Another process may take it before the caller binds it: a server
    started on it must be checked to be the one answering (:func:`listens_on`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the socket listening on TCP ``port`` (IPv4), read from
    Linux's /proc; None where /proc does not tell."""
    try:
        table = Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    listening = set()
    for line in table:
        fields = line.split()
        # local_address is HEXIP:HEXPORT; state 0A is TCP_LISTEN; field 9 is the inode.
        if len(fields) > 9 and fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            listening.add(f"socket:[{fields[9]}]")
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in listening:
                return True
    return False


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# -- PostgreSQL and Redis ----------------------------------------------------------------


def _pg_admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_exec(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (the server migrates it); dropped with FORCE after."""
    assert TEST_DATABASE_URL is not None
    name = f"ostiary_e2e_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _run_async(_pg_exec(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"OSTIARY_TEST_DATABASE_URL is set but PostgreSQL is unreachable: "
            f"{type(exc).__name__}: {exc}"
        )
    url = make_url(TEST_DATABASE_URL).set(database=name)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _run_async(_pg_exec(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def backend_vars(backend: str) -> Iterator[dict[str, str]]:
    """``OSTIARY_*`` variables selecting the storage of one server (empty for SQLite)."""
    if backend == "sqlite":
        yield {}
        return
    with contextlib.ExitStack() as stack:
        found = {"OSTIARY_DATABASE_URL": stack.enter_context(_postgres_database())}
        if TEST_REDIS_URL:
            found["OSTIARY_REDIS_URL"] = stack.enter_context(
                lease_redis_database(TEST_REDIS_URL, E2E_INDEXES)
            )
        yield found


# -- the server process ------------------------------------------------------------------


@dataclass
class Server:
    """A running ``ostiary dev`` subprocess and what a test needs to talk to it."""

    backend: str
    base_url: str
    host: str
    port: int
    admin_email: str
    admin_password: str
    data_dir: Path
    workdir: Path
    env: dict[str, str]
    stdout_path: Path
    stderr_path: Path
    process: subprocess.Popen[bytes]
    stopped_by_test: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ostiary.db"

    def cli(
        self,
        *args: str,
        stdin: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = CLI_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """``ostiary ARGS`` against this server's state (same data dir, database, Redis)."""
        env = {**self.env, **(extra_env or {})}
        return run_cli(env, *args, cwd=self.workdir, stdin=stdin, timeout=timeout)

    def cli_popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``ostiary ARGS`` without waiting; finish it with ``communicate(input=...)``."""
        return subprocess.Popen(
            [sys.executable, "-m", "ostiary", *args],
            env=dict(self.env),
            cwd=self.workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli_many(
        self, commands: Sequence[tuple[Sequence[str], str | None]]
    ) -> Callable[[], list[tuple[int, str, str]]]:
        """Start ``ostiary ARGS`` for each (ARGS, stdin), one after another in one process
        (typer's runner over the CLI's own app, against this server's state), without
        waiting; the function returned waits and answers each (exit code, stdout, stderr).
        A process per command paid Python's start and the package's import each time:
        13 users were about 20 s of a module's setup."""
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLI_MANY],
            env=dict(self.env),
            cwd=self.workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        request = json.dumps([[list(args), stdin] for args, stdin in commands])

        def finish() -> list[tuple[int, str, str]]:
            out, err = proc.communicate(request, timeout=CLI_TIMEOUT_S * max(1, len(commands)))
            assert proc.returncode == 0, f"the CLI commands did not run: {err or out}"
            return [(int(code), stdout, stderr) for code, stdout, stderr in json.loads(out)]

        return finish

    def create_users(self, *names: str, password: str) -> dict[str, str]:
        """Create one user per name with the CLI (``users create``); returns name -> e-mail."""
        emails = {name: f"{name}-{secrets.token_hex(3)}@example.com" for name in names}
        answers = self.cli_many(
            [
                (
                    ["users", "create", "--email", email, "--password-stdin", "--json"],
                    password + "\n",
                )
                for email in emails.values()
            ]
        )()
        failed = {
            email: (err or out).strip()
            for email, (code, out, err) in zip(emails.values(), answers, strict=True)
            if code != 0
        }
        assert not failed, f"users create failed: {failed}"
        return emails

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        """An independent HTTP client (own cookie jar) that does not follow redirects."""
        kwargs.setdefault("timeout", 15.0)
        return httpx.Client(base_url=self.base_url, follow_redirects=False, **kwargs)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.stopped_by_test = True
        self.process.send_signal(sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return int(self.process.returncode)

    def logs_tail(self, lines: int = 40) -> str:
        out = self.stdout_text().splitlines()[-lines:]
        err = self.stderr_text().splitlines()[-lines:]
        return "--- stdout ---\n" + "\n".join(out) + "\n--- stderr ---\n" + "\n".join(err)


ServerFactory = Callable[..., Server]
"""``server_factory(OSTIARY_X="1", ...)`` starts one more server for the current test."""


def _not_ours(
    process: subprocess.Popen[bytes], port: int, base_url: str, env: Mapping[str, str]
) -> str | None:
    """Why the server answering on ``port`` is not ``process`` (None when it is)."""
    if listens_on(process.pid, port) is False:
        return f"another process answers on port {port}"
    issuer = (env.get("OSTIARY_ISSUER") or base_url).rstrip("/")
    try:
        found = httpx.get(f"{base_url}/.well-known/openid-configuration", timeout=2.0)
        served = found.json().get("issuer") if found.status_code == 200 else None
    except (httpx.TransportError, ValueError):
        served = None
    if served != issuer:
        return f"port {port} serves issuer {served!r}, not {issuer!r}"
    if process.poll() is not None:
        return f"the server exited with status {process.returncode}"
    return None


def _start_once(
    *,
    backend: str,
    workdir: Path,
    data_dir: Path,
    env: dict[str, str],
    port: int | None = None,
    public_host: str = "127.0.0.1",
) -> tuple[Server | None, str]:
    """Start one server; (server, "") when ready, (None, logs) when the process died early.

    ``public_host`` is the name in its URLs; it always binds 127.0.0.1. ``ostiary dev``'s own
    default issuer is http://localhost:PORT (passkeys need a domain, cli/server.py): a server
    on "127.0.0.1" is given that address as its issuer, as the suite's tests expect."""
    port = port or free_port()
    if public_host == "127.0.0.1":
        env = {"OSTIARY_ISSUER": f"http://127.0.0.1:{port}", **env}
    stdout_path = workdir / "server.stdout.log"
    stderr_path = workdir / "server.stderr.log"
    out: IO[bytes]
    err: IO[bytes]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ostiary",
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    base_url = f"http://{public_host}:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            logs = (
                f"exit {process.returncode}\n--- stdout ---\n{stdout_path.read_text()}"
                f"\n--- stderr ---\n{stderr_path.read_text()}"
            )
            return None, logs
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2.0)
            if response.status_code == 200:
                # free_port() races: if another process took the port, our server fails to
                # bind and exits, and meanwhile the other one answers. Ready means that this
                # process holds the port, still runs, and serves the expected issuer.
                problem = _not_ours(process, port, base_url, env)
                if problem is None:
                    break
                last = problem
            else:
                last = f"{response.status_code} {response.text[:300]}"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    else:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(
            f"ostiary dev did not become ready within {READY_TIMEOUT_S:.0f} s "
            f"(last /readyz: {last})\n--- stderr ---\n{stderr_path.read_text()[-4000:]}"
        )
    stdout = stdout_path.read_text(encoding="utf-8", errors="replace")
    email = _ADMIN_EMAIL.search(stdout)
    password = _ADMIN_PASSWORD.search(stdout)
    if email is None or password is None:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"ostiary dev printed no admin e-mail/password on stdout:\n{stdout}")
    server = Server(
        backend=backend,
        base_url=base_url,
        host="127.0.0.1",
        port=port,
        admin_email=email.group(1),
        admin_password=password.group(1),
        data_dir=data_dir,
        workdir=workdir,
        env=env,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        process=process,
    )
    return server, ""


@contextlib.contextmanager
def running_server(
    backend: str,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    public_host: str = "127.0.0.1",
) -> Iterator[Server]:
    """Start ``ostiary dev`` on a free port of 127.0.0.1 (or on ``port``, e.g. to restart a
    server where it was); SIGTERM and wait on exit."""
    data_dir = workdir / "data"
    with backend_vars(backend) as storage_env:
        env = {
            **base_env(),
            "OSTIARY_DATA_DIR": str(data_dir),
            **storage_env,
            **(extra_env or {}),
        }
        server: Server | None = None
        failures: list[str] = []
        for _attempt in range(3):
            server, logs = _start_once(
                backend=backend,
                workdir=workdir,
                data_dir=data_dir,
                env=env,
                port=port,
                public_host=public_host,
            )
            if server is not None:
                break
            failures.append(logs)
            if port is not None or "address already in use" not in logs.lower():
                break  # not a port race: do not retry
        if server is None:
            pytest.fail("ostiary dev exited before it was ready:\n" + "\n\n".join(failures))
        if backend != "sqlite" and server.sqlite_path.exists():
            server.stop()
            pytest.fail(f"the {backend} server fell back to SQLite ({server.sqlite_path})")
        crashed: int | None = None
        try:
            yield server
        finally:
            if not server.stopped_by_test and server.process.poll() is not None:
                crashed = server.process.returncode
            server.stop()
        if crashed is not None:
            pytest.fail(
                f"the server exited on its own during the tests (status {crashed})\n"
                + server.logs_tail()
            )
