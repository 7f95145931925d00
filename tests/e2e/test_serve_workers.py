"""``ostiary serve --workers N`` (issue 14): one socket, N processes, one set of metrics.

Two workers behind the supervisor issue client_credentials tokens to Authlib (verified with
joserfc against the published JWKS). A worker killed with SIGKILL is replaced, and the service
answers meanwhile; once both original workers are dead, ``/metrics``, answered by one of their
replacements, still counts every token request they served: the counters are merged across
processes, dead ones included. SIGHUP replaces every worker while requests keep succeeding,
and SIGTERM stops all of them and exits 0. Without Redis, more than one worker is refused
(each would keep its own sign-in throttle).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.harness import (
    TEST_REDIS_URL,
    backend_vars,
    base_env,
    free_port,
    run_cli,
)
from tests.redis_lease import E2E_INDEXES, lease_redis_database

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 60.0
WORKERS = 2
SERVE = (sys.executable, "-m", "ostiary", "serve", "--host", "127.0.0.1")


def _workers_of(pid: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's spawned interpreters)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.add(int(stat.parent.name))
    return found


def _wait(
    condition: Callable[[], bool],
    what: str,
    timeout: float = READY_TIMEOUT_S,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tail = "" if log is None else "\n" + log.read_text()[-3000:]
    pytest.fail(f"{what} within {timeout:.0f} s{tail}")


def _token_requests(metrics: str) -> float:
    pattern = re.compile(
        r'^ostiary_http_requests_total\{(?=[^}]*route="/token")(?=[^}]*status="200")[^}]*\} (\S+)$',
        re.M,
    )
    return sum(float(value) for value in pattern.findall(metrics))


@contextlib.contextmanager
def _storage(backend: str) -> Iterator[dict[str, str]]:
    if backend == "postgres":
        with backend_vars("postgres") as found:
            yield found
        return
    assert TEST_REDIS_URL is not None
    with lease_redis_database(TEST_REDIS_URL, E2E_INDEXES) as redis_url:
        yield {"OSTIARY_REDIS_URL": redis_url}  # SQLite shared by the worker processes


def test_more_than_one_worker_without_redis_is_refused(tmp_path: Path) -> None:
    env = {
        **base_env(),
        "OSTIARY_DATA_DIR": str(tmp_path / "data"),
        "OSTIARY_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "OSTIARY_ISSUER": "http://127.0.0.1:9",
    }
    result = run_cli(env, "serve", "--host", "127.0.0.1", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "2 workers need OSTIARY_REDIS_URL" in result.stderr, result.stderr


@pytest.mark.skipif(TEST_REDIS_URL is None, reason="needs OSTIARY_TEST_REDIS_URL (CI sets it)")
@pytest.mark.parametrize(
    "backend",
    # PostgreSQL shares nothing more between processes than SQLite does here (both hold
    # sessions, revocations and keys); one backend keeps the suite's time down.
    ["sqlite+redis"],
)
def test_workers_share_the_socket_survive_kills_merge_metrics_and_stop_cleanly(
    backend: str, tmp_path: Path
) -> None:
    with _storage(backend) as storage_env:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **base_env(),
            "OSTIARY_DATA_DIR": str(tmp_path / "data"),
            "OSTIARY_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "OSTIARY_ISSUER": base_url,
            "OSTIARY_SHUTDOWN_GRACE_SECONDS": "10",
            **storage_env,
        }
        assert run_cli(env, "migrate", cwd=tmp_path).returncode == 0
        created = run_cli(
            env,
            *("clients", "create", "--name", "Gateway", "--grant-type", "client_credentials"),
            *("--scope", "models:read", "--json"),
            cwd=tmp_path,
        )
        assert created.returncode == 0, created.stderr
        client = orjson.loads(created.stdout)
        stderr_path = tmp_path / "serve.err"
        supervisor = subprocess.Popen(
            [*SERVE, "--port", str(port), "--workers", str(WORKERS)],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=(tmp_path / "serve.out").open("wb"),
            stderr=stderr_path.open("wb"),
            start_new_session=True,
        )

        def ready() -> bool:
            assert supervisor.poll() is None, stderr_path.read_text()[-3000:]
            try:
                return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        def token() -> str:
            # A connection per request: a worker killed with SIGKILL takes its idle keep-alive
            # connections with it (a client retries those); new ones must always be served.
            # Each worker is ready on its own: a new one answers 503 temporarily_unavailable
            # (RFC 6749 section 5.2) until it has loaded the signing key, which a client
            # retries; nothing else may fail.
            for _ in range(100):
                with OAuth2Client(
                    client_id=client["client_id"],
                    client_secret=client["client_secret"],
                    scope="models:read",
                    timeout=15.0,
                ) as oauth:
                    try:
                        fetched = oauth.fetch_token(
                            f"{base_url}/token", grant_type="client_credentials"
                        )
                    except httpx.HTTPStatusError as exc:
                        if exc.response.status_code != 503:
                            raise
                        time.sleep(0.1)
                        continue
                return str(fetched["access_token"])
            raise AssertionError("a worker answered 503 for 10 s")

        try:
            _wait(ready, "the supervisor did not serve")
            _wait(lambda: len(_workers_of(supervisor.pid)) == WORKERS, "workers did not start")
            first = _workers_of(supervisor.pid)

            jwks = KeySet.import_key_set(httpx.get(f"{base_url}/.well-known/jwks.json").json())
            claims = jwt.decode(token(), jwks).claims
            assert claims["iss"] == base_url and claims["client_id"] == client["client_id"]
            issued = 1 + sum(1 for _ in range(19) if token())

            # Kill each original worker in turn; the other (or its replacement) serves on.
            for victim in sorted(first):
                survivors = _workers_of(supervisor.pid) - {victim}
                os.kill(victim, signal.SIGKILL)
                issued += sum(1 for _ in range(10) if token())
                _wait(
                    lambda s=survivors, v=victim: (
                        v not in _workers_of(supervisor.pid)
                        and len(_workers_of(supervisor.pid) - s) == 1
                        and len(_workers_of(supervisor.pid)) == WORKERS
                    ),
                    "a killed worker was not replaced",
                    log=stderr_path,
                )
            now = _workers_of(supervisor.pid)
            assert not now & first, (now, first)
            _wait(ready, "the replacements did not serve")

            # Neither worker alive now served a token before the kills: the sum is merged.
            metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
            assert _token_requests(metrics) == issued, metrics[:3000]

            # SIGHUP: a rolling restart, requests succeed throughout.
            failures: list[BaseException] = []
            stop = threading.Event()

            def keep_asking() -> None:
                while not stop.is_set():
                    try:
                        token()
                    except BaseException as exc:
                        failures.append(exc)

            asker = threading.Thread(target=keep_asking)
            asker.start()
            try:
                supervisor.send_signal(signal.SIGHUP)
                _wait(
                    lambda: (
                        len(_workers_of(supervisor.pid)) == WORKERS
                        and not _workers_of(supervisor.pid) & now
                    ),
                    "SIGHUP did not replace every worker",
                    log=stderr_path,
                )
            finally:
                stop.set()
                asker.join(timeout=30)
            assert not failures, failures[:3]
        finally:
            workers = _workers_of(supervisor.pid)
            supervisor.send_signal(signal.SIGTERM)
            try:
                status = supervisor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait(timeout=10)
                raise
        assert status == 0, stderr_path.read_text()[-3000:]
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers), workers
        assert "Traceback" not in stderr_path.read_text()
