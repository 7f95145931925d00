#!/usr/bin/env python3
"""AuthZEN decisions per second and their latency, beside client_credentials grants (issue 13).

Starts its own ``ostiary serve`` on 127.0.0.1 over a throw-away SQLite deployment (temporary
data dir, random secret; ``--server-core N`` pins it with ``taskset``), then prepares, in
process, what a realistic policy decision point holds: one organization with ``--roles``
custom roles (default 1,000), ``--subjects`` members each holding a few of them, and ``--policies``
Cedar policies (default 100: one permit per model for one role, plus a forbid on a tier
attribute from the model catalog), and an owner whose access token the PEP presents. It also
registers a confidential client for the baseline.

Each phase is first checked (its first 50 bodies answer 200, with permits and denies), then
loaded by wrk (one thread, ``--client-core N`` pins it; ``bench/lua/bodies.lua`` posts
pre-made bodies in turn: random subjects, models and actions) for ``--duration`` seconds at
``--concurrency`` connections:

- ``single``: ``POST /access/v1/evaluation``;
- ``batch10``: ``POST /access/v1/evaluations`` with 10 evaluations (execute_all);
- ``client_credentials``: ``POST /token`` (RFC 6749 section 4.4), the baseline, same run.

It prints requests/s, decisions/s and wrk's p50 / p99 per request (``--json`` for JSON);
``--rounds N`` repeats the phases (A/B on a shared machine: alternate in the same minutes);
``--py-spy DIR`` records each phase with py-spy (raw, folded stacks) into DIR.

``--callgrind N`` replaces the load with a count that other load on the machine does not move:
the server runs under valgrind's callgrind, and each phase sends ``--warmup`` sequential
requests, then N more between two dumps; it prints instructions per request and per decision
(all threads, as bench/instructions.sh). Run another tree's code with
``PYTHONPATH=<tree>/src``. Everything talks to 127.0.0.1. Smoke run:
``uv run python bench/authzen.py --roles 20 --policies 5 --subjects 5 --duration 2``.
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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

LUA_DIR = Path(__file__).resolve().parent / "lua"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


PATHS = {
    "single": "/access/v1/evaluation",
    "batch10": "/access/v1/evaluations",
    "client_credentials": "/token",
}
PER_REQUEST = {"single": 1, "batch10": 10, "client_credentials": 1}


def bodies(world: World, phase: str, count: int, seed: int = 13) -> list[str]:
    """``count`` request bodies of a phase (one line each), random subjects, models, actions."""
    rng = random.Random(seed)
    if phase == "client_credentials":
        return ["grant_type=client_credentials&scope=models%3Aread"]
    if phase == "single":
        return [json.dumps(_evaluation(world, rng)) for _ in range(count)]
    return [
        json.dumps({"evaluations": [_evaluation(world, rng) for _ in range(10)]})
        for _ in range(count)
    ]


def headers(world: World, phase: str) -> dict[str, str]:
    if phase == "client_credentials":
        basic = base64.b64encode(f"{world.client_id}:{world.client_secret}".encode()).decode()
        return {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
    return {
        "Authorization": f"Bearer {world.token}",
        "Ostiary-Organization": world.org,
        "Content-Type": "application/json",
    }


def check(base_url: str, world: World, phases: list[str], bodies_of: dict[str, list[str]]) -> None:
    """Each phase answers correctly (200, decisions of both kinds) before it is loaded."""
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for phase in phases:
            seen: set[bool] = set()
            for body in bodies_of[phase][:50]:
                response = client.post(PATHS[phase], content=body, headers=headers(world, phase))
                if response.status_code != 200:
                    raise RuntimeError(f"{phase}: {response.status_code} {response.text[:300]}")
                data = response.json()
                if phase == "single":
                    seen.add(data["decision"])
                elif phase == "batch10":
                    if len(data["evaluations"]) != 10:
                        raise RuntimeError(f"batch10: {len(data['evaluations'])} answers")
                    seen.update(e["decision"] for e in data["evaluations"])
                else:
                    seen.add("access_token" in data)
            if phase != "client_credentials" and seen != {True, False}:
                raise RuntimeError(f"{phase}: decisions seen {seen}, expected permits and denies")


def run_wrk(
    base_url: str, phase: str, world: World, bodies_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One bounded wrk load of a phase (1 thread on ``--client-core``); its Lua summary."""
    auth = headers(world, phase)
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_MAX_REQUESTS": "0",
        "BENCH_BODIES": str(bodies_file),
        "BENCH_CONTENT_TYPE": auth["Content-Type"],
        "BENCH_AUTH": auth["Authorization"],
        "BENCH_ORG": auth.get("Ostiary-Organization", ""),
    }
    command = ["wrk", "-t1", f"-c{args.concurrency}", f"-d{args.duration}s", "--timeout", "10s"]
    command += ["--latency", "-s", str(LUA_DIR / "bodies.lua"), base_url + PATHS[phase]]
    if args.client_core is not None:
        command = ["taskset", "-c", str(args.client_core), *command]
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=args.duration + 60
    ).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return data
    raise RuntimeError(f"wrk gave no summary:\n{out}")


def summary(phase: str, data: dict[str, Any]) -> dict[str, Any]:
    seconds = data["duration_us"] / 1e6
    rate = data["responses"] / seconds if seconds else 0.0
    errors = data["errors"]
    failed = data["unexpected_status"] + sum(errors[k] for k in ("connect", "read", "write"))
    failed += errors["timeout"]
    latency = data["latency_us"]
    return {
        "phase": phase,
        "requests": data["responses"],
        "failed": failed,
        "seconds": round(seconds, 2),
        "requests_per_s": round(rate, 1),
        "decisions_per_s": (
            round(rate * PER_REQUEST[phase], 1) if phase != "client_credentials" else None
        ),
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
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


def instructions(
    server: OwnServer, world: World, phase: str, bodies_of: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Instructions per request under callgrind (all threads): ``--warmup`` sequential
    requests uninstrumented (every body once at least, so that per-node caches are as warm as
    under load), instrumentation on and a dump (which resets the counters), ``--callgrind``
    more, a dump, instrumentation off."""
    import http.client

    assert server.proc is not None
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    sent = headers(world, phase)

    def post(body: str) -> None:
        conn.request("POST", PATHS[phase], body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{phase}: {response.status} {data[:200]!r}")

    def dump(label: str) -> Path:
        before = set(server.tmp.glob("cg.*"))
        subprocess.run(
            ["callgrind_control", "-d", label, str(server.proc.pid if server.proc else 0)],
            check=True,
            capture_output=True,
        )
        while True:
            new = set(server.tmp.glob("cg.*")) - before
            if new:
                time.sleep(0.5)
                return new.pop()
            time.sleep(0.2)

    def instrument(on: bool) -> None:
        pid = str(server.proc.pid if server.proc else 0)
        command = ["callgrind_control", "-i", "on" if on else "off", pid]
        subprocess.run(command, check=True, capture_output=True)

    for i in range(max(args.warmup, len(bodies_of))):
        post(bodies_of[i % len(bodies_of)])
    instrument(True)
    dump(f"{phase}-warm")
    for i in range(args.callgrind):
        post(bodies_of[i % len(bodies_of)])
    path = dump(phase)
    instrument(False)
    conn.close()
    total = next(int(line.split()[1]) for line in path.open() if line.startswith("summary:"))
    per_request = total / args.callgrind
    return {
        "phase": phase,
        "requests": args.callgrind,
        "instructions_per_request": round(per_request),
        "instructions_per_decision": (
            round(per_request / PER_REQUEST[phase]) if phase != "client_credentials" else None
        ),
    }


class OwnServer:
    """``ostiary serve`` on 127.0.0.1 over a throw-away SQLite deployment."""

    def __init__(self, server_core: int | None, decision_log: str, callgrind: bool) -> None:
        self.callgrind = callgrind
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
            _env_file=None,
            data_dir=self.tmp / "data",
            secret_key=self.secret,
            issuer=self.base_url,
        )

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "ostiary", "migrate"],
            env=self.env, cwd=self.tmp, check=True, capture_output=True, timeout=300,
        )  # fmt: skip

    def start(self) -> None:
        timeout = 900.0 if self.callgrind else 60.0
        command = [sys.executable, "-m", "ostiary", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        if self.callgrind:
            out = f"--callgrind-out-file={self.tmp / 'cg.%p'}"
            # Instrumented only while counting (instructions() turns it on): the warm-up runs
            # at valgrind's plain speed, several times faster.
            command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", out, *command]
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
                time.sleep(1.0 if self.callgrind else 0.05)
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
    parser.add_argument("--duration", type=int, default=8, help="seconds per phase")
    parser.add_argument(
        "--phases", default="single,batch10,client_credentials", help="comma-separated"
    )
    parser.add_argument("--decision-log", default="full", choices=["off", "sampled", "full"])
    parser.add_argument("--server-core", type=int, help="pin the server to this core")
    parser.add_argument("--client-core", type=int, help="pin wrk to this core")
    parser.add_argument("--rounds", type=int, default=1, help="run the phases this many times")
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="record each phase with py-spy (raw) into DIR"
    )
    parser.add_argument(
        "--callgrind",
        type=int,
        metavar="N",
        help="instead of load: instructions per request over N sequential requests a phase",
    )
    parser.add_argument("--warmup", type=int, default=100, help="requests before --callgrind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PATHS)
    if unknown:
        raise SystemExit(f"unknown phases: {sorted(unknown)}")
    server = OwnServer(args.server_core, args.decision_log, args.callgrind is not None)
    rows: list[dict[str, Any]] = []
    try:
        say("migrating")
        server.migrate()
        say(f"preparing {args.roles} roles, {args.policies} policies, {args.subjects} members")
        world = asyncio.run(prepare(server.settings(), args))
        bodies_of = {p: bodies(world, p, 2000 if p == "single" else 500) for p in phases}
        files: dict[str, Path] = {}
        for phase, lines in bodies_of.items():
            files[phase] = server.tmp / f"{phase}.bodies"
            files[phase].write_text("\n".join(lines) + "\n")
        server.start()
        check(server.base_url, world, phases, bodies_of)
        for round_ in range(args.rounds):
            for phase in phases:
                say(f"phase {phase}" + (f", round {round_ + 1}" if args.rounds > 1 else ""))
                if args.callgrind is not None:
                    rows.append(instructions(server, world, phase, bodies_of[phase], args))
                    continue
                spy = None
                if args.py_spy is not None:
                    args.py_spy.mkdir(parents=True, exist_ok=True)
                    assert server.proc is not None
                    spy_command = ["py-spy", "record", "--pid", str(server.proc.pid)]
                    spy_command += ["--rate", "200", "--format", "raw", "--nonblocking"]
                    spy_command += ["--duration", str(args.duration)]
                    spy_command += ["--output", str(args.py_spy / f"{phase}.txt")]
                    spy = subprocess.Popen(
                        spy_command,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                rows.append(
                    summary(phase, run_wrk(server.base_url, phase, world, files[phase], args))
                )
                if spy is not None:
                    spy.wait(timeout=60)
    finally:
        server.stop(args.keep)
    if args.json or args.callgrind is not None:
        print(json.dumps(rows, indent=2))
    else:
        print(markdown(rows))
    return 1 if any(r.get("failed") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
