#!/usr/bin/env python3
"""Sign-ins per second with a password only and with a password + authenticator code (TOTP),
and what the second step adds to a sign-in's latency (issue 11, section 4).

By default it starts its own ``ostiary serve`` on 127.0.0.1 over a throw-away SQLite deployment
(temporary data dir, random secret; ``--server-core N`` pins it with ``taskset``), creates the
accounts, then drives the server over HTTP with asyncio + httpx, as browsers would: each sign-in
is a fresh cookie jar, ``GET /login`` (the form and its CSRF token) and ``POST /login``; with
TOTP also ``GET /login/second-step`` and ``POST /login/second-step`` with a code computed by
pyotp from the account's secret.

RFC 6238 section 5.2: a code is accepted once per account and step. So every sign-in of a
phase uses an account of its own (each virtual user takes the next one of the phase's pool),
and the set-up confirms each authenticator with the code of the previous step, so that the
current step's code is still unused when the timed part starts. The accounts, their TOTP
secrets and the recovery codes are made before the timed part, in-process, on the server's
database (one argon2 hash shared by every account: the set-up is not what is measured).

Each phase is bounded by ``--requests`` sign-ins and ``--duration`` seconds, whichever comes
first; it reports sign-ins per second (whole flows, GETs included), and p50/p99 of
``POST /login`` and ``POST /login/second-step``: the second step's extra latency is the
latter's. Against a server that is already running, pass ``--base-url``; the accounts are then
created through this process's ``OSTIARY_*`` settings, which must name that server's database
and secret (``OSTIARY_DATA_DIR`` / ``OSTIARY_DATABASE_URL``, ``OSTIARY_SECRET_KEY``), and its
throttle limits (``OSTIARY_LOGIN_IP_FAILURES``) must allow ``--concurrency`` attempts at once
from one address.

    uv run python bench/sign_in.py --concurrency 8 --requests 400 --duration 20 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp

REPO_DIR = Path(__file__).resolve().parent.parent
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
PASSWORD = "bench sign-in passphrase " + secrets.token_hex(8)


def say(message: str) -> None:
    print(f"[sign_in {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    if not match:
        raise RuntimeError("page without a CSRF token")
    return match.group(1)


# -- the accounts (before the timed part) -----------------------------------------------------


async def create_accounts(settings: Any, prefix: str, count: int, totp: bool) -> list[Any]:
    """``count`` accounts; with ``totp``, each with a confirmed authenticator: (email, secret)."""
    from ostiary.features.accounts.models import User
    from ostiary.storage.sqla.repositories import SqlUserStore
    from ostiary.web.runtime import Runtime

    rt = Runtime(settings)
    accounts: list[tuple[str, str | None]] = []
    try:
        password_hash = await rt.hasher.hash(PASSWORD)
        now = rt.clock.now()
        for start in range(0, count, 200):  # one transaction per 200 accounts
            async with rt.unit() as unit:
                users = SqlUserStore(unit.conn)
                for i in range(start, min(count, start + 200)):
                    email = f"{prefix}-{i}@example.com"
                    user = User(str(uuid.uuid4()), email, "", now, now, password_hash)
                    await users.add(user)
                    secret = None
                    if totp:
                        enrollment = await unit.mfa.start_totp(user.id, email)
                        secret = enrollment.secret
                        # The previous step's code (accepted as drift): the current one stays
                        # unused for the timed sign-in.
                        code = pyotp.TOTP(secret).at(rt.clock.now().timestamp() - 30)
                        await unit.mfa.confirm_totp(user.id, code, ip=None)
                    accounts.append((email, secret))
    finally:
        await rt.close()
    return accounts


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    login_ms: list[float] = field(default_factory=list)
    second_step_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _sign_in(client: httpx.AsyncClient, email: str, secret: str | None, phase: Phase) -> None:
    client.cookies.clear()
    form = await client.get("/login")
    started = time.perf_counter()
    posted = await client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": _csrf(form.text)}
    )
    phase.login_ms.append((time.perf_counter() - started) * 1000)
    location = posted.headers.get("location", "")
    if secret is None:
        if posted.status_code != 303 or location.startswith("/login"):
            raise RuntimeError(f"POST /login: {posted.status_code} {location}")
        return
    if posted.status_code != 303 or not location.startswith("/login/second-step"):
        raise RuntimeError(f"POST /login: {posted.status_code} {location}")
    page = await client.get(location)
    code = pyotp.TOTP(secret).now()
    started = time.perf_counter()
    done = await client.post(
        "/login/second-step", data={"code": code, "csrf_token": _csrf(page.text)}
    )
    phase.second_step_ms.append((time.perf_counter() - started) * 1000)
    if done.status_code != 303 or done.headers.get("location", "").startswith("/login"):
        raise RuntimeError(f"POST /login/second-step: {done.status_code}")


async def run_phase(
    base_url: str,
    name: str,
    accounts: list[tuple[str, str | None]],
    concurrency: int,
    duration: float,
) -> Phase:
    phase = Phase(name)
    queue = iter(accounts)  # each sign-in takes the next account: none is used twice
    deadline = time.perf_counter() + duration

    async def virtual_user() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            for email, secret in queue:
                if time.perf_counter() >= deadline:
                    return
                try:
                    await _sign_in(client, email, secret, phase)
                    phase.done += 1
                except (RuntimeError, httpx.HTTPError) as exc:
                    phase.failed += 1
                    if len(phase.errors) < 5:
                        phase.errors.append(str(exc))

    started = time.perf_counter()
    await asyncio.gather(*(virtual_user() for _ in range(concurrency)))
    phase.seconds = time.perf_counter() - started
    return phase


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summary(phase: Phase) -> dict[str, Any]:
    return {
        "phase": phase.name,
        "sign_ins": phase.done,
        "failed": phase.failed,
        "seconds": round(phase.seconds, 3),
        "sign_ins_per_s": round(phase.done / phase.seconds, 1) if phase.seconds else None,
        "post_login_p50_ms": _round(_pct(phase.login_ms, 50)),
        "post_login_p99_ms": _round(_pct(phase.login_ms, 99)),
        "post_second_step_p50_ms": _round(_pct(phase.second_step_ms, 50)),
        "post_second_step_p99_ms": _round(_pct(phase.second_step_ms, 99)),
        "errors": phase.errors,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    lines = [
        "| phase | sign-ins | failed | s | sign-ins/s | POST /login p50 / p99 ms "
        "| POST /login/second-step p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['phase']} | {r['sign_ins']} | {r['failed']} | {r['seconds']} "
            f"| {cell(r['sign_ins_per_s'])} "
            f"| {cell(r['post_login_p50_ms'])} / {cell(r['post_login_p99_ms'])} "
            f"| {cell(r['post_second_step_p50_ms'])} / {cell(r['post_second_step_p99_ms'])} |"
        )
    return "\n".join(lines)


# -- the server -------------------------------------------------------------------------------


class OwnServer:
    """``ostiary serve`` on 127.0.0.1 over a throw-away SQLite deployment."""

    def __init__(self, server_core: int | None) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="ostiary-bench-sign-in-"))
        self.secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
        self.env.update(
            {
                "OSTIARY_DATA_DIR": str(self.tmp / "data"),
                "OSTIARY_SECRET_KEY": self.secret,
                "OSTIARY_ISSUER": self.base_url,
                "OSTIARY_LOG_LEVEL": "warning",
                "OSTIARY_LOGIN_IP_FAILURES": "1000000",
                "OSTIARY_SHUTDOWN_GRACE_SECONDS": "3",
            }
        )
        self.server_core = server_core
        self.proc: subprocess.Popen[bytes] | None = None

    def settings(self) -> Any:
        from ostiary.config import Settings

        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=self.tmp / "data",
            secret_key=self.secret,
            issuer=self.base_url,
        )

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "ostiary", "migrate"],
            env=self.env, cwd=self.tmp, check=True, capture_output=True, timeout=300,
        )  # fmt: skip

    def start(self, timeout: float = 60.0) -> None:
        command = [sys.executable, "-m", "ostiary", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        if self.server_core is not None:
            command = ["taskset", "-c", str(self.server_core), *command]
        log = (self.tmp / "server.log").open("ab")
        self.proc = subprocess.Popen(
            command, env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT
        )
        started = time.perf_counter()
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early; see {self.tmp / 'server.log'}")
                try:
                    if client.get(f"{self.base_url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout}s")

    def stop(self, keep: bool) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="virtual users (default 8)")
    parser.add_argument(
        "--requests", type=int, default=400, help="sign-ins per phase at most (default 400)"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per phase at most (default 20)"
    )
    parser.add_argument("--base-url", help="a running server (accounts via OSTIARY_* settings)")
    parser.add_argument("--server-core", type=int, help="pin our own server to this core")
    parser.add_argument("--keep", action="store_true", help="keep the temporary deployment")
    parser.add_argument("--json", action="store_true", help="print JSON, not a markdown table")
    args = parser.parse_args(argv)
    if not (1 <= args.concurrency <= 256 and 1 <= args.requests <= 100_000):
        parser.error("--concurrency 1..256, --requests 1..100000")
    if not 0 < args.duration <= 600:
        parser.error("--duration must be in (0, 600]")
    return args


async def measure(args: argparse.Namespace, base_url: str, settings: Any) -> list[dict[str, Any]]:
    run = secrets.token_hex(3)
    say(f"creating {2 * args.requests} accounts ({args.requests} with an authenticator)")
    plain = await create_accounts(settings, f"bench-pwd-{run}", args.requests, totp=False)
    with_totp = await create_accounts(settings, f"bench-totp-{run}", args.requests, totp=True)
    rows = []
    for name, accounts in (("password", plain), ("password + TOTP", with_totp)):
        say(f"{name}: c={args.concurrency}, at most {args.requests} sign-ins / {args.duration}s")
        phase = await run_phase(base_url, name, accounts, args.concurrency, args.duration)
        rows.append(summary(phase))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_DIR / "src"))
    if args.base_url:
        from ostiary.config import load_settings

        rows = asyncio.run(measure(args, args.base_url.rstrip("/"), load_settings()))
    else:
        server = OwnServer(args.server_core)
        try:
            server.migrate()
            say(f"deployment in {server.tmp}")
            server.start()  # the accounts are made on its database before the timed part
            rows = asyncio.run(measure(args, server.base_url, server.settings()))
        finally:
            server.stop(args.keep)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(markdown(rows))
    return 1 if any(r["failed"] or not r["sign_ins"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
