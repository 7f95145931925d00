#!/usr/bin/env python3
"""AuthZEN decisions per second and their latency, beside client_credentials grants (issue 13).

Starts its own ``ostiary serve`` on 127.0.0.1 over a throw-away SQLite deployment (temporary
data dir, random secret; ``--server-core N`` pins it with ``taskset``), then prepares, in
process, what a realistic policy decision point holds: one organization with ``--roles``
custom roles (default 1,000), ``--subjects`` members each holding a few of them, and ``--policies``
Cedar policies (default 100: one permit per model for one role, plus a forbid on a tier
attribute from the model catalog), and an owner whose access token the PEP presents. It also
registers a confidential client for the baseline.

Then, for each phase, ``--concurrency`` virtual users post back to back over keep-alive
connections, bounded by ``--requests`` per phase and ``--duration`` seconds:

- ``single``: ``POST /access/v1/evaluation``, a random subject, model and action;
- ``batch10``: ``POST /access/v1/evaluations`` with 10 evaluations (execute_all);
- ``client_credentials``: ``POST /token`` (RFC 6749 section 4.4), the baseline.

It prints decisions (or tokens) per second and p50 / p99 per request (``--json`` for JSON).
Everything talks to 127.0.0.1; the numbers mean something only on a quiet machine. Smoke run:
``uv run python bench/authzen.py --roles 20 --policies 5 --requests 20 --duration 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Phase:
    name: str
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    per_request: int = 1
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class World:
    org: str
    token: str
    subjects: list[str]
    models: int
    client_id: str
    client_secret: str


async def prepare(settings: Any, args: argparse.Namespace) -> World:
    """Roles, members, catalog, policies and credentials, straight into the database."""
    from ostiary.features.clients.service import ClientRegistration
    from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter
    from ostiary.web.runtime import Runtime

    rt = Runtime(settings)
    rng = random.Random(13)
    try:
        async with rt.unit() as unit:
            await unit.keys.ensure_keys(actor="bench")
            owner = await unit.accounts.create_user("pep@bench.example", secrets.token_urlsafe(18))
            org = await unit.orgs.create("Bench", actor=None)
            await unit.orgs.add_member(org.id, owner.id, actor=None)
            await unit.rbac.assign(org.id, ("user", owner.id), "owner", actor=None)
            roles = [
                (await unit.rbac.create_role(org.id, f"r{i}", actor=None)).id
                for i in range(args.roles)
            ]
            models = max(1, args.policies - 1)
            for m in range(models):
                tier = "restricted" if m % 10 == 0 else "standard"
                await unit.models.create(None, f"m{m}", {"tier": tier}, actor=None)
            lines = [
                f'permit(principal in Role::"r{m % args.roles}", '
                f'action == Action::"models:invoke", resource == model::"m{m}");'
                for m in range(models)
            ]
            lines.append(
                "forbid(principal, action, resource is model) "
                'when { resource has tier && resource.tier == "restricted" };'
            )
            await unit.policies.set(org.id, "\n".join(lines), actor=None)
            client, secret = await unit.clients.register(
                ClientRegistration(
                    name="bench", grant_types=("client_credentials",), scopes=("models:read",)
                )
            )
        subjects: list[str] = []
        for s in range(args.subjects):  # one unit per member: short transactions
            async with rt.unit() as unit:
                user = await unit.accounts.create_user(
                    f"s{s}@bench.example", secrets.token_urlsafe(18)
                )
                await unit.orgs.add_member(org.id, user.id, actor=None)
                for role in rng.sample(roles, k=min(3, len(roles))):
                    await unit.rbac.assign(org.id, ("user", user.id), role, actor=None)
                subjects.append(user.id)
        async with rt.unit() as unit:
            minted = await TokenMinter(unit.keys, rt.oauth_policy.issuer).access_token(
                AccessTokenRequest(
                    client_id="bench-pep",
                    subject=owner.id,
                    scope="",
                    audience=[rt.oauth_policy.issuer],
                    ttl=timedelta(hours=1),
                ),
                rt.clock.now(),
            )
    finally:
        await rt.close()
    assert secret is not None
    return World(org.id, minted.token, subjects, models, client.client_id, secret)


def _evaluation(world: World, rng: random.Random) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": rng.choice(world.subjects)},
        "action": {"name": rng.choice(["models:invoke", "models:invoke", "models:read"])},
        "resource": {"type": "model", "id": f"m{rng.randrange(world.models)}"},
    }


async def run_phase(base_url: str, name: str, world: World, args: argparse.Namespace) -> Phase:
    phase = Phase(name, per_request=10 if name == "batch10" else 1)
    deadline = time.perf_counter() + args.duration
    budget = iter(range(args.requests))
    headers = {"Authorization": f"Bearer {world.token}", "Ostiary-Organization": world.org}

    async def virtual_user(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            for _ in budget:
                if time.perf_counter() >= deadline:
                    return
                if name == "single":
                    call = client.post(
                        "/access/v1/evaluation", json=_evaluation(world, rng), headers=headers
                    )
                elif name == "batch10":
                    body = {"evaluations": [_evaluation(world, rng) for _ in range(10)]}
                    call = client.post("/access/v1/evaluations", json=body, headers=headers)
                else:
                    call = client.post(
                        "/token",
                        data={"grant_type": "client_credentials", "scope": "models:read"},
                        auth=(world.client_id, world.client_secret),
                    )
                started = time.perf_counter()
                try:
                    response = await call
                except httpx.HTTPError as exc:
                    phase.failed += 1
                    if len(phase.errors) < 5:
                        phase.errors.append(type(exc).__name__)
                    continue
                phase.latencies_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code == 200:
                    phase.done += 1
                else:
                    phase.failed += 1
                    if len(phase.errors) < 5:
                        phase.errors.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(virtual_user(i) for i in range(args.concurrency)))
    phase.seconds = time.perf_counter() - started
    return phase


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


def summary(phase: Phase) -> dict[str, Any]:
    rate = phase.done / phase.seconds if phase.seconds else None
    return {
        "phase": phase.name,
        "requests": phase.done,
        "failed": phase.failed,
        "seconds": round(phase.seconds, 3),
        "requests_per_s": round(rate, 1) if rate else None,
        "decisions_per_s": (
            round(rate * phase.per_request, 1)
            if rate and phase.name != "client_credentials"
            else None
        ),
        "p50_ms": _pct(phase.latencies_ms, 50),
        "p99_ms": _pct(phase.latencies_ms, 99),
        "errors": phase.errors,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    lines = [
        "| phase | requests | failed | s | requests/s | decisions/s | p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['phase']} | {r['requests']} | {r['failed']} | {r['seconds']} "
            f"| {cell(r['requests_per_s'])} | {cell(r['decisions_per_s'])} "
            f"| {cell(r['p50_ms'])} / {cell(r['p99_ms'])} |"
        )
    return "\n".join(lines)


class OwnServer:
    """``ostiary serve`` on 127.0.0.1 over a throw-away SQLite deployment."""

    def __init__(self, server_core: int | None, decision_log: str) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="ostiary-bench-authzen-"))
        self.secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
        self.env.update(
            {
                "OSTIARY_DATA_DIR": str(self.tmp / "data"),
                "OSTIARY_SECRET_KEY": self.secret,
                "OSTIARY_ISSUER": self.base_url,
                "OSTIARY_LOG_LEVEL": "warning",
                "OSTIARY_DECISION_LOG": decision_log,
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roles", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20_000, help="per phase")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase, at most")
    parser.add_argument(
        "--phases", default="single,batch10,client_credentials", help="comma-separated"
    )
    parser.add_argument("--decision-log", default="full", choices=["off", "sampled", "full"])
    parser.add_argument("--server-core", type=int, help="pin the server to this core")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = OwnServer(args.server_core, args.decision_log)
    try:
        say("migrating")
        server.migrate()
        say(f"preparing {args.roles} roles, {args.policies} policies, {args.subjects} members")
        world = asyncio.run(prepare(server.settings(), args))
        server.start()
        rows = []
        for name in args.phases.split(","):
            say(f"phase {name}")
            phase = asyncio.run(run_phase(server.base_url, name.strip(), world, args))
            rows.append(summary(phase))
    finally:
        server.stop(args.keep)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))
    return 1 if any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
