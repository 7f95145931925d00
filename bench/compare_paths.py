#!/usr/bin/env python3
"""The hot paths beside client_credentials grants, in one run of one shipped server (issue 14).

Part two of ``bench/compare.sh`` (which runs the peer comparison first and passes its line in
with ``--peer-line``). It starts one ``ostiary serve`` as shipped: default settings, the
caller's ``OSTIARY_*`` environment, only the deployment's place (a temporary SQLite data dir),
a random secret and the issuer (``http://127.0.0.1:PORT``) set, so the access log is on unless
the caller sets ``OSTIARY_LOG_LEVEL``; pinned to ``--server-core`` (1) with ``taskset``, wrk
pinned to ``--client-core`` (0), 127.0.0.1 only. It prepares, before the server starts:

- the AuthZEN world of ``bench/authzen.py`` (``--roles`` 1,000 custom roles, ``--policies``
  100 Cedar policies, ``--subjects`` 50 members, a PEP's access token, a confidential client);
- with the CLI, as ``bench/api_keys.sh`` does: an organization, a gateway service account
  whose key holds ``keys:verify``, and a member's key with an IP and a model allowlist;
- with the CLI, as ``bench/tokens.sh`` does: a user with a password and a first-party client
  whose ID tokens are RS256 (``--id-token-alg RS256``).

Then each phase is checked (it answers 200 with the right content), and ``--rounds`` rounds
load the phases in turn (alternated, because this machine is shared and noisy), each load a
discarded ``--warmup`` seconds and then ``--duration`` measured seconds at ``--concurrency``
connections (wrk, one thread):

- ``client_credentials``: ``POST /token`` with Basic client authentication, the reference;
- ``verify``: ``POST /api/v1/keys/verify`` by the gateway's key for the member's key;
- ``authzen_single`` / ``authzen_batch10``: ``POST /access/v1/evaluation`` /
  ``/access/v1/evaluations`` (10 evaluations), bodies of ``bench/authzen.py`` in turn
  (``bench/lua/bodies.lua``);
- ``refresh_rs256``: refresh grants with rotation, each answer with an RS256 ID token
  (``bench/lua/refresh.lua`` chains the rotated tokens); every load, the warm-up included,
  gets a fresh pool from the real code + PKCE flow (``bench/refresh_tokens.py``), as a spent
  token presented again would be reuse and revoke its family.

It prints a markdown table: per phase the median requests/s (decisions/s for AuthZEN), each
round's figure, the median p99, the server's CPU time per request (all threads, from
``/proc/PID/task/*/schedstat``: what holds best when the core is shared), what everything
else took of the server's core meanwhile (``/proc/stat``; a load with much of it was disturbed
by other users of the machine) and the ratio of the medians to client_credentials of the same
run; then the peer line. ``--json-out FILE`` writes every figure as JSON; ``--phases`` picks
some (client_credentials first). Exit status 1 when a phase failed (a check, a non-2xx answer,
a socket error), never because of a ratio. Run from the repository root:
``uv run python bench/compare_paths.py --duration 2 --warmup 1 --rounds 1`` (a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from authzen import LUA_DIR, OwnServer, World, bodies, check, headers, prepare, say  # noqa: E402

PHASES = ("client_credentials", "verify", "authzen_single", "authzen_batch10", "refresh_rs256")
AUTHZEN_PHASE = {  # our phase -> bench/authzen.py's
    "client_credentials": "client_credentials",
    "authzen_single": "single",
    "authzen_batch10": "batch10",
}
DECISIONS_PER_REQUEST = {"authzen_single": 1, "authzen_batch10": 10}
PATHS = {
    "client_credentials": "/token",
    "verify": "/api/v1/keys/verify",
    "authzen_single": "/access/v1/evaluation",
    "authzen_batch10": "/access/v1/evaluations",
    "refresh_rs256": "/token",
}
KEY_MODEL = "gpt-bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REFRESH_EMAIL = "bench-refresh@example.com"
# OwnServer's settings that stay: the deployment itself; the rest is the caller's environment.
DEPLOYMENT = ("OSTIARY_DATA_DIR", "OSTIARY_SECRET_KEY", "OSTIARY_ISSUER")


class ShippedServer(OwnServer):
    """bench/authzen.py's server, with the default settings instead of a quiet log: the caller's
    environment plus the deployment's data dir, secret and issuer."""

    def __init__(self, server_core: int) -> None:
        super().__init__(server_core, decision_log="full", callgrind=False)
        self.env = {**os.environ, **{name: self.env[name] for name in DEPLOYMENT}}

    def cli(self, *args: str, stdin: str | None = None) -> dict[str, Any]:
        """``ostiary ARGS --json`` on this deployment; its JSON answer."""
        done = subprocess.run(
            [sys.executable, "-m", "ostiary", *args, "--json"],
            env=self.env, cwd=self.tmp, input=stdin, capture_output=True, text=True,
            check=True, timeout=120,
        )  # fmt: skip
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def cpu_ns(self) -> int:
        """CPU time of every thread of the worker (the log writer's too), from the scheduler."""
        assert self.proc is not None
        total = 0
        for stat in Path(f"/proc/{self.proc.pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended between the listing and the read
        return total


@dataclass
class Keys:
    gateway: str
    member: str


@dataclass
class Refresher:
    client_id: str
    client_secret: str
    redirect_uri: str
    password: str

    @property
    def basic(self) -> str:
        return base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()


def create_keys(server: ShippedServer) -> Keys:
    """bench/api_keys.sh's set-up: a gateway key with keys:verify, a member's key to verify."""
    member = "bench-member@example.com"
    server.cli("users", "create", "--email", member)
    org = server.cli("orgs", "create", "--name", "Keys", "--owner", member)["id"]
    gateway = server.cli("service-accounts", "create", org, "--name", "gateway", "--role", "admin")
    gateway_key = server.cli(
        "api-keys", "create", "--service-account", gateway["id"], "--permission", "keys:verify"
    )["key"]
    member_key = server.cli(
        "api-keys", "create", "--org", org, "--user", member, "--model", KEY_MODEL,
        "--allow-ip", "127.0.0.0/8",
    )["key"]  # fmt: skip
    return Keys(gateway_key, member_key)


def create_refresher(server: ShippedServer) -> Refresher:
    """bench/tokens.sh's set-up for refresh: a user and a first-party client, RS256 ID tokens."""
    password = base64.urlsafe_b64encode(os.urandom(18)).decode()
    server.cli("users", "create", "--email", REFRESH_EMAIL, "--password-stdin", stdin=password)
    redirect_uri = f"{server.base_url}/bench/callback"
    client = server.cli(
        "clients", "create", "--name", "bench-refresh", "--redirect-uri", redirect_uri,
        "--grant-type", "authorization_code", "--grant-type", "refresh_token",
        "--scope", "openid", "--scope", "offline_access", "--first-party",
        "--id-token-alg", "RS256",
    )  # fmt: skip
    return Refresher(client["client_id"], client["client_secret"], redirect_uri, password)


def refresh_pool(server: ShippedServer, refresher: Refresher, count: int, path: Path) -> Path:
    """``count`` fresh refresh tokens, one a line, through the real code + PKCE flow."""
    command = [sys.executable, str(BENCH_DIR / "refresh_tokens.py"), "--base-url", server.base_url]
    command += ["--client-id", refresher.client_id, "--client-secret", refresher.client_secret]
    command += ["--redirect-uri", refresher.redirect_uri, "--email", REFRESH_EMAIL]
    command += ["--count", str(count)]
    with path.open("w") as out:
        subprocess.run(
            command, input=refresher.password + "\n", stdout=out, text=True, check=True,
            timeout=60 + count,
        )  # fmt: skip
    return path


def verify_body(keys: Keys) -> str:
    return json.dumps({"key": keys.member, "ip": "127.0.0.1", "model": KEY_MODEL})


def verify_headers(keys: Keys) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.gateway}", "Content-Type": "application/json"}


def _jwt_alg(token: str) -> Any:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["alg"]


def check_verify(base_url: str, keys: Keys) -> None:
    """The member's key verifies (and a wrong one does not), as the load will ask."""
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        good = client.post(PATHS["verify"], content=verify_body(keys), headers=verify_headers(keys))
        wrong = Keys(keys.gateway, keys.member[:-4] + "AAAA")
        bad = client.post(PATHS["verify"], content=verify_body(wrong), headers=verify_headers(keys))
    if good.status_code != 200 or good.json().get("valid") is not True:
        raise RuntimeError(f"verify: {good.status_code} {good.text[:300]}")
    if bad.status_code != 200 or bad.json().get("valid") is not False:
        raise RuntimeError(f"verify of a wrong key: {bad.status_code} {bad.text[:300]}")


def check_refresh(server: ShippedServer, refresher: Refresher) -> None:
    """A refresh grant answers 200 with a rotated refresh token and an RS256 ID token."""
    token = refresh_pool(server, refresher, 1, server.tmp / "check.pool").read_text().strip()
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        answer = client.post(
            PATHS["refresh_rs256"],
            data={"grant_type": "refresh_token", "refresh_token": token},
            headers={"Authorization": f"Basic {refresher.basic}"},
        )
    data = answer.json() if answer.status_code == 200 else {}
    if data.get("refresh_token") in (None, token) or "id_token" not in data:
        raise RuntimeError(f"refresh: {answer.status_code} {answer.text[:300]}")
    if _jwt_alg(data["id_token"]) != "RS256":
        raise RuntimeError(f"refresh: the ID token is {_jwt_alg(data['id_token'])}, not RS256")


@dataclass
class Load:
    """One wrk load: what wrk counted, and the server's CPU time meanwhile."""

    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    detail: str = ""
    other_on_core_pct: float = 0.0

    @property
    def requests_per_s(self) -> float:
        ok = self.requests - self.failed
        return ok / self.seconds if self.seconds else 0.0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)([a-z]+)", text)
    if found is None or found.group(2) not in _UNITS_MS:
        raise RuntimeError(f"not a wrk duration: {text!r}")
    return float(found.group(1)) * _UNITS_MS[found.group(2)]


def _failures(out: str) -> tuple[int, str]:
    """Failed requests in wrk's report: non-2xx answers (any status but 200 where common.lua
    counts them), socket errors, and a refresh pool that lost or lacked tokens."""
    failed = 0
    details = []
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        failed += int(non2xx.group(1))
        details.append(f"non-2xx {non2xx.group(1)}")
    summary = re.search(r"^BENCH_JSON (.*)$", out, re.M)
    if summary:
        failed = max(failed, json.loads(summary.group(1))["unexpected_status"])
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        failed += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
        details.append(f"socket errors: {socket_errors.group(1)}")
    pool = re.search(r"refresh pool: (\d+) responses without a new token, (\d+) requests", out)
    if pool and (int(pool.group(1)) or int(pool.group(2))):
        failed = max(failed, int(pool.group(1)) + int(pool.group(2)))
        details.append(pool.group(0))
    return failed, "; ".join(details)


def parse_wrk(out: str, cpu_ns: int) -> Load:
    """wrk's report (``--latency``) of one load, and the server's CPU time meanwhile."""
    found = re.search(r"(\d+) requests in ([\d.]+[a-z]+),", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (found and p50 and p99):
        raise RuntimeError(f"no wrk report in:\n{out[-2000:]}")
    requests = int(found.group(1))
    failed, detail = _failures(out)
    per_request = cpu_ns / 1000 / requests if requests else 0.0
    return Load(
        requests=requests,
        seconds=_ms(found.group(2)) / 1000,
        failed=failed,
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        cpu_us_per_request=round(per_request, 1),
        detail=detail,
    )


@dataclass
class Bench:
    """What the loads need: the server, the prepared credentials and bodies, the options."""

    server: ShippedServer
    world: World
    keys: Keys
    refresher: Refresher
    bodies_files: dict[str, Path]
    args: argparse.Namespace
    pools: int = field(default=0)

    def wrk_command(self, phase: str, seconds: int) -> tuple[list[str], dict[str, str]]:
        command = ["taskset", "-c", str(self.args.client_core), "wrk", "-t1"]
        command += [f"-c{self.args.concurrency}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
        url = self.server.base_url + PATHS[phase]
        if phase == "refresh_rs256":
            self.pools += 1
            pool = self.server.tmp / f"refresh-{self.pools}.pool"
            # One token a connection, one for the request wrk makes to check the script, one
            # spare (bench/lua/refresh.lua says why).
            refresh_pool(self.server, self.refresher, self.args.concurrency + 2, pool)
            script = [str(LUA_DIR / "refresh.lua"), url, "--", str(pool), self.refresher.basic, "1"]
            return [*command, "-s", *script], dict(os.environ)
        sent = verify_headers(self.keys)
        if phase != "verify":
            sent = headers(self.world, AUTHZEN_PHASE[phase])
        env = {
            **os.environ,
            "BENCH_LUA_DIR": str(LUA_DIR),
            "BENCH_MAX_REQUESTS": "0",
            "BENCH_BODIES": str(self.bodies_files[phase]),
            "BENCH_CONTENT_TYPE": sent["Content-Type"],
            "BENCH_AUTH": sent["Authorization"],
            "BENCH_ORG": sent.get("Ostiary-Organization", ""),
        }
        return [*command, "-s", str(LUA_DIR / "bodies.lua"), url], env

    def load(self, phase: str, seconds: int) -> Load:
        """One load; with what everything but the worker took of its core meanwhile (other
        users of a shared machine: a load with much of it is disturbed)."""
        command, env = self.wrk_command(phase, seconds)
        started = time.perf_counter_ns()
        core, cpu = self.core_busy_ns(), self.server.cpu_ns()
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 60
        )
        cpu = self.server.cpu_ns() - cpu
        other = self.core_busy_ns() - core - cpu
        load = parse_wrk(done.stdout, cpu)
        wall = time.perf_counter_ns() - started
        load.other_on_core_pct = round(max(0.0, 100 * other / wall), 1)
        return load

    def core_busy_ns(self) -> int:
        """Busy time of the server's core (``/proc/stat``: all but idle and iowait)."""
        name = f"cpu{self.args.server_core}"
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields[0] == name:
                busy = sum(int(v) for i, v in enumerate(fields[1:9]) if i not in (3, 4))
                return busy * 1_000_000_000 // CLOCK_TICKS
        raise RuntimeError(f"no {name} in /proc/stat")


def prepare_bench(server: ShippedServer, args: argparse.Namespace) -> Bench:
    say(f"preparing {args.roles} roles, {args.policies} policies, {args.subjects} members")
    world = asyncio.run(prepare(server.settings(), args))
    say("creating API keys and the refresh client with the CLI")
    keys = create_keys(server)
    refresher = create_refresher(server)
    files: dict[str, Path] = {}
    for phase, authzen_phase in AUTHZEN_PHASE.items():
        files[phase] = server.tmp / f"{phase}.bodies"
        count = 2000 if authzen_phase == "single" else 500
        files[phase].write_text("\n".join(bodies(world, authzen_phase, count)) + "\n")
    files["verify"] = server.tmp / "verify.bodies"
    files["verify"].write_text(verify_body(keys) + "\n")
    return Bench(server, world, keys, refresher, files, args)


def check_all(bench: Bench) -> None:
    say("checking that each phase answers")
    authzen_bodies = {
        AUTHZEN_PHASE[phase]: bench.bodies_files[phase].read_text().splitlines()
        for phase in AUTHZEN_PHASE
    }
    check(bench.server.base_url, bench.world, list(authzen_bodies), authzen_bodies)
    check_verify(bench.server.base_url, bench.keys)
    check_refresh(bench.server, bench.refresher)


def measure(bench: Bench) -> dict[str, list[Load]]:
    loads: dict[str, list[Load]] = {phase: [] for phase in bench.args.phases}
    for round_ in range(bench.args.rounds):
        for phase in bench.args.phases:
            say(f"round {round_ + 1}/{bench.args.rounds}: {phase}")
            if bench.args.warmup > 0:
                bench.load(phase, bench.args.warmup)
            load = bench.load(phase, bench.args.duration)
            loads[phase].append(load)
            if load.failed:
                say(f"  {phase} failed: {load.detail}")
    return loads


def report(loads: dict[str, list[Load]]) -> list[dict[str, Any]]:
    """Per phase: medians over the rounds, each round, and the ratio to client_credentials."""
    reference = statistics.median(r.requests_per_s for r in loads["client_credentials"])
    rows = []
    for phase, runs in loads.items():
        rate = statistics.median(r.requests_per_s for r in runs)
        per_request = DECISIONS_PER_REQUEST.get(phase)
        rows.append(
            {
                "phase": phase,
                "path": PATHS[phase],
                "requests_per_s": round(rate, 1),
                "decisions_per_s": round(rate * per_request, 1) if per_request else None,
                "rounds_requests_per_s": [round(r.requests_per_s, 1) for r in runs],
                "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
                "p50_ms": round(statistics.median(r.p50_ms for r in runs), 2),
                "cpu_us_per_request": round(statistics.median(r.cpu_us_per_request for r in runs)),
                "other_on_core_pct": statistics.median(r.other_on_core_pct for r in runs),
                "ratio_to_client_credentials": round(rate / reference, 2) if reference else None,
                "failed": sum(r.failed for r in runs),
                "loads": [asdict(r) for r in runs],
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], peer_line: str) -> str:
    lines = [
        "| phase | requests/s | decisions/s | rounds (requests/s) | p99 ms | CPU µs/req "
        "| other on core | vs client_credentials | failed |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        decisions = "-" if r["decisions_per_s"] is None else f"{r['decisions_per_s']:.0f}"
        spread = " / ".join(f"{v:.0f}" for v in r["rounds_requests_per_s"])
        lines.append(
            f"| {r['phase']} | {r['requests_per_s']:.0f} | {decisions} | {spread} "
            f"| {r['p99_ms']} | {r['cpu_us_per_request']} | {r['other_on_core_pct']:.0f}% "
            f"| {r['ratio_to_client_credentials']:.2f}x | {r['failed']} |"
        )
    return "\n".join([*lines, "", f"peer: {peer_line}"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="measured seconds per load")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds before each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--phases",
        type=lambda value: value.split(","),
        default=list(PHASES),
        help="comma-separated, client_credentials first (the reference)",
    )
    parser.add_argument("--roles", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--server-core", type=int, default=1)
    parser.add_argument("--client-core", type=int, default=0)
    parser.add_argument("--peer-line", default="not run", help="the peer comparison's result")
    parser.add_argument("--json-out", type=Path, help="write every figure here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 600:
        parser.error("--rounds must be 1..20 and --duration 1..600")
    if args.phases[0] != "client_credentials" or not set(args.phases) <= set(PHASES):
        parser.error(f"--phases: client_credentials first, then any of {', '.join(PHASES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    server = ShippedServer(args.server_core)
    try:
        say("migrating")
        server.migrate()
        bench = prepare_bench(server, args)
        server.start()
        check_all(bench)
        loads = measure(bench)
    except (RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as failure:
        stderr = getattr(failure, "stderr", None)
        say(f"failed: {failure}" + (f"\n{stderr[-1000:]}" if stderr else ""))
        print(f"phases not measured: {failure}\n\npeer: {args.peer_line}")
        return 1
    finally:
        server.stop(args.keep)
    rows = report(loads)
    print(markdown(rows, args.peer_line))
    if args.json_out is not None:
        document = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {
                k: v for k, v in vars(args).items() if k not in ("json_out", "keep", "peer_line")
            },
            "seconds": round(time.perf_counter() - started),
            "phases": rows,
            "peer": args.peer_line,
        }
        args.json_out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 1 if any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
