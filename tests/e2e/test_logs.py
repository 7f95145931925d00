"""What the server writes about a sign-in: structured JSON logs without secrets, and metrics;
one access line per request, under concurrent load and up to the server's exit.

OWASP ASVS 4.0 V7.1.1/V7.1.2: no credentials, session ids or (unmasked) e-mail addresses in
logs. The logs are read from the real process's stderr.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import time
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Server, ServerFactory
from tests.e2e.httpflow import CSRF_COOKIE, SESSION_COOKIE, login_error, sign_in

pytestmark = pytest.mark.e2e


def _json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _wait_for_request_logs(server: Server, request_ids: set[str]) -> list[dict[str, Any]]:
    """The access-log lines of these request ids (the server logs after it answers)."""
    deadline = time.monotonic() + 10
    while True:
        lines = _json_lines(server.stderr_text())
        seen = {line.get("request_id") for line in lines if line.get("event") == "request"}
        if request_ids <= seen or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


class _RequestIds:
    """An httpx request hook giving every request an ``X-Request-ID`` of its own."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)
        self.sent: list[tuple[str, str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        request_id = f"e2e-{self.tag}-{len(self.sent)}"
        request.headers["X-Request-ID"] = request_id
        self.sent.append((request.method, request.url.path, request_id))

    def last(self, method: str, path: str) -> str:
        return [rid for m, p, rid in self.sent if (m, p) == (method, path)][-1]


@pytest.fixture(scope="module")
def sign_in_traffic(server: Server) -> dict[str, Any]:
    """A full sign-in (right password) and a failed one, each request with its own id."""
    wrong_password = "Wr0ng-" + secrets.token_urlsafe(12)
    hook = _RequestIds()
    ids = {}
    with server.client(event_hooks={"request": [hook]}) as client:
        good = sign_in(client, server.admin_email, server.admin_password)
        assert good.status_code == 303, login_error(good.text)
        ids["ok"] = hook.last("POST", "/login")
        assert good.headers.get("x-request-id") == ids["ok"]
        session_cookie = client.cookies[SESSION_COOKIE]
        csrf_cookie = client.cookies[CSRF_COOKIE]
        assert client.get("/account").status_code == 200
        ids["account"] = hook.last("GET", "/account")
    with server.client(event_hooks={"request": [hook]}) as client:
        bad = sign_in(client, server.admin_email, wrong_password)
        assert bad.status_code == 401
        ids["bad"] = hook.last("POST", "/login")
    sent = {request_id for _method, _path, request_id in hook.sent}
    lines = _wait_for_request_logs(server, sent)
    seen = {line.get("request_id") for line in lines if line.get("event") == "request"}
    assert sent <= seen, (
        f"access-log lines missing for {sorted(sent - seen)} after 10 s\n" + server.logs_tail(20)
    )
    return {
        "ids": ids,
        "sent": hook.sent,
        "wrong_password": wrong_password,
        "session_cookie": session_cookie,
        "csrf_cookie": csrf_cookie,
        "lines": lines,
    }


def test_logs_hold_no_password_cookie_or_full_email(
    server: Server, sign_in_traffic: dict[str, Any]
) -> None:
    stderr = server.stderr_text()
    assert stderr.strip(), "the server wrote no logs at all"
    secrets_seen = {
        "admin password": server.admin_password,
        "wrong password": sign_in_traffic["wrong_password"],
        "session cookie": sign_in_traffic["session_cookie"],
        "csrf cookie": sign_in_traffic["csrf_cookie"],
        "admin e-mail": server.admin_email,
    }
    leaked = [name for name, value in secrets_seen.items() if value in stderr]
    assert not leaked, f"found in the server's stderr: {leaked}"


def test_every_stderr_line_is_a_json_record(
    server: Server, sign_in_traffic: dict[str, Any]
) -> None:
    """A log shipper reads the server's stderr as JSON lines; one plain line breaks that.
    ``ostiary dev``'s banner and progress ("Preparing the database ...") go to stdout."""
    assert sign_in_traffic["lines"]
    stderr = server.stderr_text()
    not_json = []
    for number, line in enumerate(stderr.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            not_json.append((number, line))
            continue
        if not isinstance(value, dict):
            not_json.append((number, line))
    assert not not_json, (
        f"{len(not_json)} stderr line(s) of `ostiary dev` are not JSON log records, e.g. "
        f"line {not_json[0][0]}: {not_json[0][1]!r}"
    )


def test_request_log_lines_carry_a_request_id(sign_in_traffic: dict[str, Any]) -> None:
    requests = [line for line in sign_in_traffic["lines"] if line.get("event") == "request"]
    assert requests, "no access-log lines (event=request) on stderr"
    for line in requests:
        assert isinstance(line.get("request_id"), str), line
        assert line["request_id"], line
        assert {"method", "route", "status", "duration_ms", "level", "timestamp"} <= set(line)
    ours = [line["request_id"] for line in requests if line["request_id"].startswith("e2e-")]
    assert sorted(ours) == sorted(rid for _m, _p, rid in sign_in_traffic["sent"]), ours
    by_id = {line["request_id"]: line for line in requests}
    ids = sign_in_traffic["ids"]
    ok, bad, account = by_id[ids["ok"]], by_id[ids["bad"]], by_id[ids["account"]]
    assert (ok["method"], ok["route"], ok["status"]) == ("POST", "/login", 303), ok
    assert (bad["method"], bad["route"], bad["status"]) == ("POST", "/login", 401), bad
    assert (account["method"], account["route"], account["status"]) == (
        "GET",
        "/account",
        200,
    ), account


def test_metrics_count_requests_by_route(server: Server, sign_in_traffic: dict[str, Any]) -> None:
    with server.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts: dict[tuple[str, str, str], float] = {}
    sample = re.compile(r"^ostiary_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
    for line in response.text.splitlines():
        match = sample.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"]))
        counts[(labels["route"], labels["method"], labels["status"])] = float(match["value"])
    assert counts, "ostiary_http_requests_total has no samples"
    assert counts.get(("/login", "POST", "303"), 0) >= 1, counts
    assert counts.get(("/login", "POST", "401"), 0) >= 1, counts
    assert counts.get(("/login", "GET", "200"), 0) >= 2, counts
    # Route templates, not raw paths: no per-user or per-session label values.
    assert all(not route.startswith("/account/sessions/") or "{" in route for route, _, _ in counts)


def _access_lines(stderr: str, prefix: str) -> list[dict[str, Any]]:
    return [
        line
        for line in _json_lines(stderr)
        if line.get("event") == "request" and str(line.get("request_id", "")).startswith(prefix)
    ]


async def _send_concurrently(server: Server, prefix: str, count: int) -> dict[str, tuple[str, int]]:
    """``count`` requests over 32 connections (GET /healthz, GET /.well-known/jwks.json, and
    POST /token without credentials), each with its own request id -> (route, status)."""
    calls = [
        ("GET", "/healthz", 200),
        ("GET", "/.well-known/jwks.json", 200),
        ("POST", "/token", 401),
    ]
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    expected: dict[str, tuple[str, int]] = {}
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            method, path, status = calls[i % len(calls)]
            request_id = f"{prefix}-{i}"
            data = {"grant_type": "client_credentials"} if method == "POST" else None
            response = await client.request(
                method, path, data=data, headers={"X-Request-ID": request_id}
            )
            assert response.status_code == status, (path, response.status_code, response.text)
            expected[request_id] = (path, status)

        await asyncio.gather(*(one(i) for i in range(count)))
    return expected


async def test_every_request_gets_one_complete_access_line_under_concurrent_load(
    server: Server,
) -> None:
    prefix = f"load-{secrets.token_hex(4)}"
    expected = await _send_concurrently(server, prefix, 900)
    lines = _wait_for_request_logs(server, set(expected))
    ours = [line for line in lines if str(line.get("request_id", "")).startswith(prefix)]
    ours = [line for line in ours if line.get("event") == "request"]
    assert len(ours) == len(expected), f"{len(ours)} access lines for {len(expected)} requests"
    for line in ours:
        assert (line["route"], line["status"]) == expected[line["request_id"]], line
        assert {"method", "duration_ms", "level", "timestamp"} <= set(line), line


# The access log's writer does not touch storage: the two tests that start servers of their
# own (a fresh PostgreSQL database and migrations each on that backend) run on SQLite only;
# the module's shared server covers both backends above.
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"])


@ONE_BACKEND
async def test_access_lines_are_all_written_before_the_server_exits(
    server_factory: ServerFactory,
) -> None:
    """SIGTERM right after the last response: the log writer's queue is written at exit,
    before the server's last records ("stopped"), in the order things happened."""
    srv = server_factory()
    prefix = f"exit-{secrets.token_hex(4)}"
    expected = await _send_concurrently(srv, prefix, 600)
    srv.signal(signal.SIGTERM)
    status = await asyncio.to_thread(srv.process.wait, 30)
    assert status == 0, srv.logs_tail(8)
    stderr = srv.stderr_text()
    ours = _access_lines(stderr, prefix)
    assert sorted(line["request_id"] for line in ours) == sorted(expected), (
        f"{len(ours)} access lines for {len(expected)} requests\n" + srv.logs_tail(8)
    )
    events = [line.get("event") for line in _json_lines(stderr)]
    last_request = max(i for i, line in enumerate(_json_lines(stderr)) if line in ours)
    assert "stopped" in events[last_request:], events[-10:]


@ONE_BACKEND
async def test_the_access_log_can_be_turned_off(server_factory: ServerFactory) -> None:
    srv = server_factory(OSTIARY_ACCESS_LOG="false")
    prefix = f"off-{secrets.token_hex(4)}"
    await _send_concurrently(srv, prefix, 30)
    srv.signal(signal.SIGTERM)
    assert await asyncio.to_thread(srv.process.wait, 30) == 0, srv.logs_tail(8)
    records = _json_lines(srv.stderr_text())
    assert not [line for line in records if line.get("event") == "request"], srv.logs_tail(8)
    assert any(line.get("event") == "started" for line in records), srv.logs_tail(8)
