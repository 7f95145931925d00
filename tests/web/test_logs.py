"""The log writer and the access log (web/logs.py, web/middleware.py).

One JSON line per request, with the fields structlog wrote before; every line written, in order,
under concurrent writers and with a full queue; drops (stderr blocked) counted and reported,
never silent; every queued line written when the process exits; the access log can be off.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from ostiary.web import logs
from ostiary.web.logs import LineWriter
from ostiary.web.middleware import Metrics, RequestContextMiddleware


class _Stderr(io.TextIOWrapper):
    """A text stream like ``sys.stderr``, whose bytes the test reads back."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", line_buffering=True)

    def records(self) -> list[dict[str, Any]]:
        assert logs.flush_logs()
        raw: bytes = self.buffer.getvalue()  # type: ignore[attr-defined]
        return [json.loads(line) for line in raw.decode().splitlines()]


@pytest.fixture
def stderr() -> Iterator[_Stderr]:
    """``configure_logging("info")`` writing to a stream of the test's; undone afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    stream = _Stderr()
    logs.configure_logging("info", json=True, stream=stream)
    try:
        yield stream
    finally:
        logs.stop_logging()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.configure(**saved[2])


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(0)  # let concurrent requests interleave
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _get(app: Any, path: str, request_id: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"x-request-id", request_id.encode())],
    }
    await app(scope, receive, send)


def test_an_access_line_has_the_keys_and_values_structlog_wrote(stderr: _Stderr) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-1")
    try:
        structlog.get_logger("ostiary.access").info(
            "request", method="POST", route="/token", status=401, duration_ms=1.25
        )
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    access = logs.access_log()
    assert access is not None
    access.request("POST", "/token", 401, 1.25, "req-1")
    through_structlog, ours = stderr.records()
    assert list(ours) == list(through_structlog)  # same keys, same order
    stamps = (ours.pop("timestamp"), through_structlog.pop("timestamp"))
    assert (
        ours
        == through_structlog
        == {
            "method": "POST",
            "route": "/token",
            "status": 401,
            "duration_ms": 1.25,
            "event": "request",
            "request_id": "req-1",
            "level": "info",
        }
    )
    for stamp in stamps:  # ISO 8601 in UTC, as structlog's TimeStamper(fmt="iso", utc=True)
        assert stamp.endswith("Z"), stamp
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert parsed.utcoffset() == datetime.timedelta(0)


async def test_one_complete_line_per_request_under_concurrent_load(stderr: _Stderr) -> None:
    """2,000 requests at once, while two threads log through stdlib logging meanwhile."""
    app = RequestContextMiddleware(_ok, Metrics())
    other = logging.getLogger("ostiary.test")
    stop = threading.Event()

    def chatter(name: str) -> None:
        for _ in range(5000):
            if stop.is_set():
                return
            other.info("meanwhile in %s", name)

    threads = [threading.Thread(target=chatter, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    sent = [f"load-{i}" for i in range(2000)]
    try:
        await asyncio.gather(*(_get(app, "/x", request_id) for request_id in sent))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    records = stderr.records()  # every line parses as JSON
    requests = [r for r in records if r["event"] == "request"]
    assert sorted(r["request_id"] for r in requests) == sorted(sent)
    assert all(
        r.keys() >= {"method", "route", "status", "duration_ms", "timestamp"} for r in requests
    )
    assert any(r["event"].startswith("meanwhile in t") for r in records)


class _Gate:
    """A binary stream whose ``write`` waits until the test opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.open.wait(10)
        self.chunks.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[bytes]:
        return b"".join(self.chunks).splitlines()


def test_a_full_queue_waits_for_room_and_loses_nothing() -> None:
    """Eight threads, 500 lines each, through a queue of 16: each writer waits its turn."""
    out = io.BytesIO()
    writer = LineWriter(out, capacity=16, interval=0.001, full_wait=10.0)

    def produce(name: str) -> None:
        for i in range(500):
            writer.write(f"{name} {i}\n".encode())

    threads = [threading.Thread(target=produce, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 8 * 500
    assert writer.dropped == 0
    for n in range(8):  # each thread's lines in the order it wrote them
        assert [line for line in lines if line.startswith(f"t{n} ")] == [
            f"t{n} {i}" for i in range(500)
        ]


def test_lines_dropped_while_stderr_is_blocked_are_counted_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = _Gate()
    writer = LineWriter(gate, capacity=4, interval=0.0, full_wait=0.01)  # type: ignore[arg-type]
    monkeypatch.setattr(logs, "_writer", writer)
    writer.write(b"first\n")
    assert not writer.flush(0.05)  # the writer thread is stuck writing "first"
    for i in range(4):  # fills the queue
        writer.write(f"queued {i}\n".encode())
    for i in range(3):  # the first waits full_wait, then these are dropped
        writer.write(f"dropped {i}\n".encode())
    assert writer.dropped == 3
    assert logs.dropped_lines() == 3
    exported = Metrics().registry.get_sample_value("ostiary_log_lines_dropped_total")
    assert exported == 3

    gate.open.set()
    assert writer.flush(5)
    writer.write(b"after\n")  # the writer moved again: no more drops
    writer.close()
    lines = gate.lines()
    assert lines[:5] == [b"first", *(f"queued {i}".encode() for i in range(4))]
    warning = json.loads(lines[5])
    assert warning["level"] == "warning" and warning["dropped"] == 3, warning
    assert lines[6:] == [b"after"]
    assert writer.dropped == 3


def test_a_failing_stream_counts_its_lines_as_dropped_and_the_writer_lives_on() -> None:
    class Failing:
        def __init__(self) -> None:
            self.fail = True
            self.written: list[bytes] = []

        def write(self, data: bytes) -> int:
            if self.fail:
                raise RuntimeError("the log collector went away")
            self.written.append(data)
            return len(data)

        def flush(self) -> None:
            pass

    stream = Failing()
    writer = LineWriter(stream, interval=0.0)  # type: ignore[arg-type]
    writer.write(b"lost 1\n")
    writer.write(b"lost 2\n")
    assert writer.flush(5)
    assert writer.dropped == 2
    stream.fail = False
    writer.write(b"kept\n")
    assert writer.flush(5)
    writer.close()
    assert stream.written == [b"kept\n"]


def test_lines_queued_when_the_process_exits_are_written() -> None:
    """No explicit stop: the interpreter's exit (atexit) writes what the thread has not."""
    script = (
        "from ostiary.web.logs import access_log, configure_logging\n"
        "configure_logging('info')\n"
        "log = access_log()\n"
        "for i in range(3000):\n"
        "    log.request('GET', '/healthz', 200, 0.1, f'exit-{i}')\n"
        "raise SystemExit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    ids = [json.loads(line)["request_id"] for line in done.stderr.decode().splitlines()]
    assert ids == [f"exit-{i}" for i in range(3000)]


async def test_the_access_log_can_be_turned_off(stderr: _Stderr) -> None:
    off = RequestContextMiddleware(_ok, Metrics(), access_log=False)
    await _get(off, "/off", "off-1")
    logging.getLogger().setLevel(logging.WARNING)  # OSTIARY_LOG_LEVEL=warning
    await _get(RequestContextMiddleware(_ok, Metrics()), "/warning", "warning-1")
    logging.getLogger().setLevel(logging.INFO)
    await _get(RequestContextMiddleware(_ok, Metrics()), "/on", "on-1")
    assert [r["request_id"] for r in stderr.records() if r["event"] == "request"] == ["on-1"]


async def test_console_mode_logs_requests_through_structlog() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    stream = _Stderr()
    logs.configure_logging("info", json=False, stream=stream)
    try:
        assert logs.access_log() is None
        await _get(RequestContextMiddleware(_ok, Metrics()), "/x", "console-1")
        assert logs.flush_logs()
    finally:
        logs.stop_logging()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.configure(**saved[2])
    text = stream.buffer.getvalue().decode()  # type: ignore[attr-defined]
    assert "request" in text and "console-1" in text, text


async def test_a_request_without_an_id_gets_a_new_one_each_time() -> None:
    app = RequestContextMiddleware(_ok, Metrics())
    given: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            given.extend(v.decode() for k, v in message["headers"] if k == b"x-request-id")

    for sent in ("", "bad id with spaces", None):
        headers = [] if sent is None else [(b"x-request-id", sent.encode())]
        for _ in range(100):
            await app(
                {"type": "http", "method": "GET", "path": "/x", "headers": headers}, receive, send
            )
    assert len(given) == 300 and len(set(given)) == 300  # new, and never one sent as invalid
    assert all(re.fullmatch(r"[0-9a-f]{16}", request_id) for request_id in given)


async def test_events_logged_while_a_request_is_served_carry_its_id_and_no_other(
    stderr: _Stderr,
) -> None:
    """Concurrent requests each log from inside the app (structlog and stdlib logging): every
    event names its own request, and an event logged after the request names none."""
    events = structlog.get_logger("ostiary.test")
    stdlib = logging.getLogger("ostiary.test.stdlib")

    async def noisy(scope: Any, receive: Any, send: Any) -> None:
        mine = scope["state"]["request_id"]
        events.warning("inside", mine=mine)
        await asyncio.sleep(0)  # the other requests run in between
        stdlib.warning("inside %s", mine)
        await _ok(scope, receive, send)

    app = RequestContextMiddleware(noisy, Metrics())
    sent = [f"ctx-{i}" for i in range(50)]
    await asyncio.gather(*(_get(app, "/x", request_id) for request_id in sent))
    await _get(app, "/x", "ctx-last")  # in this task: its id must not outlive the request
    events.warning("after")
    records = stderr.records()
    structlog_events = [r for r in records if r["event"] == "inside"]
    assert sorted(r["request_id"] for r in structlog_events) == sorted([*sent, "ctx-last"])
    assert all(r["request_id"] == r["mine"] for r in structlog_events)
    stdlib_events = [r for r in records if r["event"].startswith("inside ")]
    assert all(r["event"] == f"inside {r['request_id']}" for r in stdlib_events)
    assert len(stdlib_events) == len(sent) + 1
    (after,) = [r for r in records if r["event"] == "after"]
    assert "request_id" not in after


async def test_a_declared_body_over_the_limit_is_logged_as_413_and_leaves_no_request_id(
    stderr: _Stderr,
) -> None:
    """The early 413 (Content-Length over 1 MiB, the app never called) takes the same way out
    as any other request: its access line says 413, and its id is gone afterwards."""
    called: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append("app")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [(b"x-request-id", b"big-1"), (b"content-length", b"2000000")],
    }
    await RequestContextMiddleware(app, Metrics())(scope, receive, send)
    structlog.get_logger("ostiary.test").warning("after")
    assert called == []
    assert sent[0]["status"] == 413
    records = stderr.records()
    (line,) = [r for r in records if r["event"] == "request"]
    assert (line["status"], line["request_id"]) == (413, "big-1")
    (after,) = [r for r in records if r["event"] == "after"]
    assert "request_id" not in after
