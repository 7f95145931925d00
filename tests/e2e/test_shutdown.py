"""Rolling restart: SIGTERM while requests are in flight.

Every request that reached the server gets a complete HTTP response (no reset, no truncated
body), the process exits 0 within ``OSTIARY_SHUTDOWN_GRACE_SECONDS``, and afterwards the port
refuses new connections. The requests are wrong-password sign-ins: each costs an argon2id
verification (~20-40 ms), so fifty of them keep the server busy while it shuts down.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from tests.e2e.harness import ServerFactory
from tests.e2e.httpflow import CSRF_COOKIE, find_form

pytestmark = pytest.mark.e2e

CONCURRENT = 50
GRACE_SECONDS = 20  # the default of OSTIARY_SHUTDOWN_GRACE_SECONDS, set explicitly


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    finished_at: float


async def _read_response(reader: asyncio.StreamReader) -> Answer:
    """One complete HTTP/1.1 response (Content-Length framed); raises if cut short."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, _reason = [*status_line.split(" ", 2), ""][:3]
    assert version == "HTTP/1.1", status_line
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    assert "content-length" in headers, headers  # the app never streams these responses
    body = await reader.readexactly(int(headers["content-length"]))
    return Answer(int(status), headers, body, time.monotonic())


def _requests_logged_after_shutdown_began(stderr: str) -> int:
    """POST /login access-log lines after uvicorn's "Shutting down" record."""
    records = []
    for line in stderr.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    starts = [i for i, r in enumerate(records) if r.get("event") == "Shutting down"]
    assert starts, "no 'Shutting down' record in the server log"
    return sum(
        1
        for r in records[starts[0] :]
        if r.get("event") == "request" and r.get("route") == "/login" and r.get("method") == "POST"
    )


async def test_sigterm_lets_in_flight_requests_finish_then_exits_0(
    server_factory: ServerFactory,
) -> None:
    """The exit status is checked last: uvicorn (>= 0.29) re-raises the SIGTERM it captured
    once the drain is done, and ``_serve`` (src/ostiary/cli/server.py) turns that into exit 0, so a
    process supervisor does not report an orderly stop as a crash (status -15, shell 143)."""
    srv = server_factory(
        OSTIARY_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        # Fifty failures from one address must all reach the password check.
        OSTIARY_LOGIN_ACCOUNT_FAILURES="1000",
        OSTIARY_LOGIN_IP_FAILURES="1000",
    )
    host = f"127.0.0.1:{srv.port}"

    # A real sign-in form: its CSRF token and cookie make every POST pass the CSRF check.
    with srv.client() as client:
        page = client.get("/login")
        token = find_form(page.text, "/login").fields["csrf_token"]
        csrf_cookie = client.cookies[CSRF_COOKIE]
    body = urlencode(
        {
            "csrf_token": token,
            "email": srv.admin_email,
            "password": "not-the-password-during-shutdown",
            "next": "/account",
        }
    ).encode()
    slow_request = (
        f"POST /login HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nCookie: {CSRF_COOKIE}={csrf_cookie}\r\n\r\n"
    ).encode() + body

    # Open the connections and have each answer once, so the server has accepted all of them
    # (a connection still in the kernel's accept queue is not yet the server's to drain).
    connections = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", srv.port) for _ in range(CONCURRENT))
    )
    for _reader, writer in connections:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    warm = await asyncio.gather(*(_read_response(reader) for reader, _ in connections))
    assert [answer.status for answer in warm] == [200] * CONCURRENT

    for _reader, writer in connections:
        writer.write(slow_request)
    await asyncio.gather(*(writer.drain() for _, writer in connections))
    reading = [asyncio.create_task(_read_response(reader)) for reader, _ in connections]
    await asyncio.sleep(0.05)  # let the server's event loop read the requests
    sent_term_at = time.monotonic()
    srv.signal(signal.SIGTERM)

    results = await asyncio.wait_for(
        asyncio.gather(*reading, return_exceptions=True), timeout=GRACE_SECONDS + 5
    )
    broken = [repr(r) for r in results if isinstance(r, BaseException)]
    assert not broken, f"{len(broken)}/{CONCURRENT} in-flight requests got no complete answer: " + (
        ", ".join(sorted(set(broken)))
    )
    answers = [r for r in results if isinstance(r, Answer)]
    assert [a.status for a in answers] == [401] * CONCURRENT, [a.status for a in answers]
    assert all(b"Incorrect e-mail address or password." in a.body for a in answers)
    finished_after_term = sum(a.finished_at > sent_term_at for a in answers)
    assert finished_after_term > 0, "all requests had finished before SIGTERM: nothing was tested"
    for _reader, writer in connections:
        writer.close()

    # The process exits within the grace period ...
    try:
        status = await asyncio.to_thread(srv.process.wait, GRACE_SECONDS)
    except Exception:
        pytest.fail(f"the server did not exit within {GRACE_SECONDS} s of SIGTERM")
    exited_after = time.monotonic() - sent_term_at
    assert exited_after <= GRACE_SECONDS

    # ... and nothing listens on the port any more.
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", srv.port)

    # The server's own log shows requests completing after it began shutting down.
    drained = _requests_logged_after_shutdown_began(srv.stderr_text())
    assert drained > 0, "no sign-in finished after the server began shutting down\n" + (
        srv.logs_tail(8)
    )

    assert status == 0, (
        f"the server exited with status {status} after a graceful SIGTERM shutdown "
        f"(negative = killed by that signal number); expected 0. "
        f"{finished_after_term}/{CONCURRENT} requests finished during the drain.\n"
        + srv.logs_tail(8)
    )
