#!/usr/bin/env python3
"""Where a hot path's time goes, without HTTP: the ASGI app called directly, in one process.

Builds a throw-away SQLite deployment (temporary data dir, random secret) with what
``bench/authzen.py`` prepares (an organization with ``--roles`` roles, ``--policies`` Cedar
policies, members, a confidential client, the PEP's access token), builds the app with
``create_app(Settings())``, runs its lifespan, and then sends ``--requests`` requests of each
``--phase`` straight into the app (scope, receive, send: no socket, no HTTP parser), so what
is timed is Ostiary's own code: middlewares, fast lane, routes, services, Cedar.

Prints microseconds per request (wall time of a sequential loop: a quiet machine matters; run
twice and compare) and, with ``--profile``, cProfile's top functions by cumulative time (a
profile slows Python code by about 2x, C calls less; read shares, not absolute times).
``--callgrind`` is not here: bench/authzen.py and bench/instructions.sh count instructions of
the real server.

    uv run python bench/inprocess.py --phase client_credentials --phase single --profile
    uv run python bench/inprocess.py --phase introspect --requests 5000
    uv run python bench/inprocess.py --phase verify --roles 10 --policies 10 --repeat 5

``verify`` is bench/api_keys.sh's load: a gateway's service-account key (``keys:verify``)
checks a member's key with an address and a model (``POST /api/v1/keys/verify``).

``--latency`` times each request alone and prints percentiles (``--cpu-time``: the thread's CPU
time, which a busy machine does not stretch): a tail here is the request path's own (a cache
miss, a rebuild), not queueing behind other requests.

``--access-log`` keeps the access log on (the shipped default); it is off by default here so
that its writer thread does not add noise to a profile of the request path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from authzen import bodies, headers, prepare

PATHS = {
    "single": "/access/v1/evaluation",
    "batch10": "/access/v1/evaluations",
    "client_credentials": "/token",
    "introspect": "/introspect",
    "verify": "/api/v1/keys/verify",
}


async def api_keys(settings: Any, world: Any) -> tuple[str, str]:
    """As bench/api_keys.sh: a gateway service account (role admin) whose key holds only
    ``keys:verify``, and a member's key limited to one model and 127.0.0.0/8. Returns
    (gateway key, member key)."""
    from ostiary.web.runtime import Runtime

    rt = Runtime(settings)
    try:
        async with rt.unit() as unit:
            keys = unit.api_keys
            gateway = await keys.create_service_account(
                world.org, "gateway", roles=["admin"], actor=None
            )
            gateway_key = await keys.create_key(
                world.org, ("service_account", gateway.id), permissions=["keys:verify"], actor=None
            )
            member_key = await keys.create_key(
                world.org,
                ("user", world.subjects[0]),
                models=["gpt-bench"],
                allowed_ips=["127.0.0.0/8"],
                actor=None,
            )
    finally:
        await rt.close()
    return gateway_key.secret, member_key.secret


def _scope(path: str, header_map: dict[str, str], body: bytes) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in header_map.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"host", b"127.0.0.1"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, path: str, header_map: dict[str, str], body: bytes) -> tuple[int, bytes]:
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the app never waits for a disconnect on these paths
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(path, header_map, body), receive, send)
    return status, b"".join(chunks)


class Lifespan:
    """Runs an ASGI app's lifespan startup and, on exit, its shutdown."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 20)
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack()
            raise


async def _latencies(
    app: Any,
    path: str,
    header_map: dict[str, str],
    picks: list[bytes],
    phase: str,
    *,
    cpu_time: bool,
) -> None:
    """Each request timed alone, the loop let run between requests (so the server's background
    tasks, such as the decision log's writer, take their turns outside the timed calls);
    prints the percentiles and the slowest requests' positions. ``cpu_time``: this thread's
    CPU time instead of wall time, which other processes of a busy machine do not stretch (a
    wall-time tail that CPU time does not show is the machine's, not the request's)."""
    times: list[float] = []
    clock = time.thread_time if cpu_time else time.perf_counter
    for body in picks:
        await asyncio.sleep(0)
        started = clock()
        await call(app, path, header_map, body)
        times.append(clock() - started)
    ranked = sorted(times)
    pick = lambda q: ranked[min(len(ranked) - 1, int(q * len(ranked)))] * 1e3  # noqa: E731
    slowest = sorted(range(len(times)), key=times.__getitem__)[-5:]
    print(
        f"{phase}: p50 {pick(0.5):.3f} ms, p99 {pick(0.99):.3f} ms, p99.9 {pick(0.999):.3f} ms,"
        f" max {ranked[-1] * 1e3:.3f} ms; slowest at {slowest}"
    )


async def main(args: argparse.Namespace) -> None:
    from ostiary.config import Settings
    from ostiary.web.app import create_app

    settings = Settings()
    world = await prepare(settings, args)
    gateway_key, member_key = await api_keys(settings, world)
    app = create_app(settings)
    async with Lifespan(app):
        token_headers = headers(world, "client_credentials")
        status, data = await call(
            app, "/token", token_headers, bodies(world, "client_credentials", 1)[0].encode()
        )
        assert status == 200, data
        issued = json.loads(data)["access_token"]
        for phase in args.phase:
            if phase == "introspect":
                phase_headers = token_headers
                phase_bodies = [f"token={issued}".encode()]
            elif phase == "verify":
                phase_headers = {
                    "Authorization": f"Bearer {gateway_key}",
                    "Content-Type": "application/json",
                }
                check = {"key": member_key, "ip": "127.0.0.1", "model": "gpt-bench"}
                phase_bodies = [json.dumps(check).encode()]
            else:
                phase_headers = headers(world, phase)
                phase_bodies = [b.encode() for b in bodies(world, phase, 200)]
            rng = random.Random(7)
            picks = [rng.choice(phase_bodies) for _ in range(args.requests)]
            for body in picks[: args.warmup]:
                status, data = await call(app, PATHS[phase], phase_headers, body)
                assert status == 200, (phase, status, data[:300])
                if phase == "verify":
                    assert json.loads(data)["valid"] is True, data
            for attempt in range(args.repeat):
                if args.latency:
                    await _latencies(
                        app, PATHS[phase], phase_headers, picks, phase, cpu_time=args.cpu_time
                    )
                    continue
                started = time.perf_counter()
                for body in picks:
                    await call(app, PATHS[phase], phase_headers, body)
                elapsed = time.perf_counter() - started
                print(
                    f"{phase}: {elapsed / len(picks) * 1e6:,.0f} µs per request"
                    f" ({len(picks)} requests, run {attempt + 1})"
                )
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                for body in picks:
                    await call(app, PATHS[phase], phase_headers, body)
                profiler.disable()
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(args.top)
                if args.profile_out:
                    stats.dump_stats(f"{args.profile_out}.{phase}.pstats")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", action="append", choices=sorted(PATHS), default=None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-out", default=None, help="also write FILE.PHASE.pstats")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--latency", action="store_true", help="per-request percentiles instead of the mean"
    )
    parser.add_argument(
        "--cpu-time", action="store_true", help="with --latency: CPU time, not wall time"
    )
    parser.add_argument("--access-log", action="store_true", help="keep the access log on")
    parser.add_argument("--roles", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--subjects", type=int, default=50)
    args = parser.parse_args()
    args.phase = args.phase or ["client_credentials", "single"]
    data_dir = tempfile.mkdtemp(prefix="ostiary-inprocess-")
    os.environ.update(
        OSTIARY_DATA_DIR=data_dir,
        OSTIARY_ISSUER="http://127.0.0.1:8000",
        OSTIARY_SECRET_KEY=secrets.token_urlsafe(32),
        OSTIARY_LOG_LEVEL=os.environ.get("OSTIARY_LOG_LEVEL", "info"),
        OSTIARY_ACCESS_LOG="true" if args.access_log else "false",
    )
    import subprocess

    subprocess.run([sys.executable, "-m", "ostiary", "migrate"], check=True, capture_output=True)
    asyncio.run(main(args))
