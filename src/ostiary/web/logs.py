"""Structured JSON logs (structlog) with secrets redacted and e-mail addresses masked, written
to stderr by a thread of their own, in batches.

OWASP ASVS 4.0 V7.1: no credentials, session ids or tokens in logs. The redaction runs as a
processor on every event, so a careless ``log.info(..., password=...)`` is still safe.

Two ways into one writer:

- every event of structlog or stdlib logging (uvicorn, sqlalchemy, ours) goes through the
  processors above and is rendered on the thread that logs it, as before;
- the access log, one line per HTTP request (web/middleware.py), is rendered by
  ``AccessLog``: one ``orjson.dumps`` of a fixed set of fields. Through structlog and a stdlib
  ``StreamHandler`` the same line cost a processor chain, a ``LogRecord``, the handler's lock
  and a ``write`` + ``flush`` per request: 15 % of the client-credentials rate and 35 % of the
  introspection rate on one core (bench/RESULTS.md, "The access log"). Its fields cannot carry
  a secret (the route is the template, never the path or query; the request id is ours or
  matched ``[A-Za-z0-9._-]{1,64}``; method, status and duration are not free text), so skipping
  the redaction processor loses nothing; the line has the same keys and values as structlog's.

``LineWriter`` takes the rendered lines: the event loop only appends to a deque, and the
writer thread wakes at most every ``interval`` and writes what is there with one ``write``.
Nothing is dropped silently: when the queue is full (stderr blocked) the logging thread waits
for room, at most ``full_wait``; past that, lines are counted (``dropped``, exported as
``ostiary_log_lines_dropped_total``) and a warning with the count is written once the writer
moves again. ``stop_logging`` (called by ``ostiary serve``/``dev`` on exit, and at interpreter
exit) writes every line queued before it; records at ERROR and above are waited for, so the
last traceback before a hard crash is out.
"""

from __future__ import annotations

import atexit
import collections
import contextvars
import datetime
import logging
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import IO, Any

import orjson
import structlog

from ostiary.protocol.masking import redact

__all__ = [
    "AccessLog",
    "LineWriter",
    "access_log",
    "configure_logging",
    "dropped_lines",
    "flush_logs",
    "on_dropped_lines",
    "stop_logging",
]


class LineWriter:
    """Lines (bytes, newline included) written to a binary stream by one thread, in batches.

    ``write`` may be called from any thread; the lines of all callers keep the order of their
    ``write`` calls (a deque's append and popleft are atomic).
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        capacity: int = 16_384,
        interval: float = 0.05,
        full_wait: float = 1.0,
    ) -> None:
        self._stream = stream
        self._capacity = capacity
        self._interval = interval
        self._full_wait = full_wait
        # bytes lines, and threading.Events marking a flush point: set once what precedes is out
        self._queue: collections.deque[bytes | threading.Event] = collections.deque()
        self._wake = threading.Event()  # something to write
        self._hurry = threading.Event()  # a flush or stop waits: no batching pause
        self._stalled = False  # a full-queue wait timed out: drop until the writer moves
        self._closed = False
        self.dropped = 0
        self._dropped_reported = 0
        self._drop_lock = threading.Lock()  # both threads count drops
        self._thread = threading.Thread(target=self._run, name="ostiary-log-writer", daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> None:
        queue = self._queue
        if self._closed:
            self._write_out([line])
            return
        if len(queue) >= self._capacity:
            self._write_when_full(line)
            return
        if not queue:
            self._wake.set()
        queue.append(line)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every line written before this call is out; False after ``timeout``."""
        if self._closed:
            return True
        done = threading.Event()
        self._queue.append(done)
        self._hurry.set()
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, stop the thread; later lines are written synchronously."""
        if self._closed:
            return
        self._closed = True
        self._hurry.set()
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._drain()  # lines appended between the thread's last drain and _closed

    def _write_when_full(self, line: bytes) -> None:
        # The old synchronous handler blocked the loop for as long as stderr did; this blocks
        # at most full_wait, then drops and counts until the writer gets a batch out again.
        if not self._stalled and self.flush(self._full_wait):
            self._queue.append(line)
            return
        self._stalled = True
        self._count_dropped(1)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(1.0)
            self._wake.clear()
            self._hurry.wait(self._interval)  # let lines gather into one write
            self._hurry.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self._queue
        pop = queue.popleft
        items = [pop() for _ in range(len(queue))]
        if not items:
            return
        lines = [item for item in items if type(item) is bytes]
        with self._drop_lock:
            unreported, self._dropped_reported = self.dropped - self._dropped_reported, self.dropped
        if unreported:
            lines.append(_dropped_warning(unreported))
        self._write_out(lines)
        self._stalled = False
        for item in items:
            if isinstance(item, threading.Event):
                item.set()

    def _write_out(self, lines: list[bytes]) -> None:
        try:
            self._stream.write(b"".join(lines))
            self._stream.flush()
        except Exception:
            # stderr closed, gone or broken: nowhere left to say so. The thread must live on,
            # or every later line (and every flush) would wait for it in vain.
            self._count_dropped(len(lines), reported=True)

    def _count_dropped(self, count: int, *, reported: bool = False) -> None:
        with self._drop_lock:
            self.dropped += count
            if reported:
                self._dropped_reported = self.dropped
        listener = _drop_listener
        if listener is not None:
            listener(count)


def _dropped_warning(count: int) -> bytes:
    return orjson.dumps(
        {
            "event": "log lines dropped: stderr was blocked",
            "dropped": count,
            "level": "warning",
            "timestamp": datetime.datetime.now(datetime.UTC),
        },
        option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE,
    )


class AccessLog:
    """One JSON line per HTTP request, rendered with orjson and handed to a ``LineWriter``.

    The keys and values are those structlog wrote for
    ``log.info("request", method=..., route=..., status=..., duration_ms=...)`` with the
    request id of ``REQUEST_ID``: the same ``level`` and ISO 8601 UTC ``timestamp``.
    """

    __slots__ = ("_writer",)

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def request(
        self, method: str, route: str, status: int, duration_ms: float, request_id: str
    ) -> None:
        self._writer.write(
            orjson.dumps(
                {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "event": "request",
                    "request_id": request_id,
                    "level": "info",
                    "timestamp": datetime.datetime.now(datetime.UTC),
                },
                option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE,
            )
        )


class _WriterHandler(logging.Handler):
    """A stdlib handler that hands its formatted records to the ``LineWriter``."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            self.writer.write(line.encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.ERROR:
            self.writer.flush(1.0)

    def flush(self) -> None:
        self.writer.flush()


_writer: LineWriter | None = None
_access: AccessLog | None = None
# Told of every dropped line (from the writer thread): where worker processes share metrics
# (web/middleware.py, multiprocess mode), a counter there sums every worker's drops.
_drop_listener: Callable[[int], None] | None = None


def on_dropped_lines(listener: Callable[[int], None] | None) -> None:
    """Call ``listener(count)`` whenever lines are dropped (any thread); None stops it."""
    global _drop_listener
    _drop_listener = listener


def access_log() -> AccessLog | None:
    """The JSON access log set up by ``configure_logging``; None before it or in console mode.

    (The middleware then logs through structlog, which goes wherever the embedding
    application sent it.)
    """
    return _access


def dropped_lines() -> int:
    return _writer.dropped if _writer is not None else 0


def flush_logs(timeout: float = 5.0) -> bool:
    """Wait until every line logged so far is written (tests, and before reading stderr)."""
    return _writer.flush(timeout) if _writer is not None else True


def stop_logging() -> None:
    """Write every queued line and stop the writer thread (process exit; tests)."""
    global _writer, _access
    writer, _writer, _access = _writer, None, None
    if writer is not None:
        writer.close()


atexit.register(stop_logging)


def _redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return redact(dict(event_dict))  # type: ignore[no-any-return]


def _binary(stream: IO[str]) -> IO[bytes]:
    buffer: IO[bytes] | None = getattr(stream, "buffer", None)
    if buffer is None:
        raise ValueError(f"{stream!r} has no binary buffer to write log lines to")
    stream.flush()  # what was written as text before goes out first
    return buffer


# The request id of the request being served (set by web/middleware.py), added to every event
# logged meanwhile. A ContextVar of our own rather than structlog's ``bind_contextvars``: one
# ``set`` and one ``reset`` a request instead of two calls through structlog's keyword and
# name handling (1.5 % of an AuthZEN decision in a py-spy profile).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ostiary_request_id", default=None
)


def _add_request_id(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def configure_logging(
    level: str = "info", json: bool = True, stream: IO[str] | None = None
) -> None:
    """Route structlog and stdlib logging (uvicorn, sqlalchemy) through one JSON renderer to
    ``stream`` (stderr) via a ``LineWriter``; the access log takes the same writer."""
    global _writer, _access
    stop_logging()
    _writer = LineWriter(_binary(stream if stream is not None else sys.stderr))
    _access = AccessLog(_writer) if json else None
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_event,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        # filter_by_level first: a suppressed event must cost no processor work (hot path).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _WriterHandler(_writer)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log (with route and request id); uvicorn's is redundant.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
