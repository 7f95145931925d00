"""Pure-ASGI middleware: request id, access log, Prometheus metrics, body size limit, and the
headers every response carries (OWASP Secure Headers Project):

- ``X-Content-Type-Options: nosniff`` on every response, JSON and redirects included, so that
  no browser renders a JSON body (which may echo input) as HTML;
- ``Strict-Transport-Security`` (RFC 6797 section 6.1) when the issuer is https: one year, no
  ``includeSubDomains`` (other hosts under the issuer's domain are not ours to pin).

They are prebuilt once per app and appended with the request id, so the fast lane
(web/fastlane.py), which runs inside this middleware, gets them at the cost of one list copy.

Written against the ASGI interface rather than ``BaseHTTPMiddleware`` to stay cheap on the hot
path (no extra task or stream copy per request). The access log line is rendered by
``web.logs.AccessLog`` (orjson, written by a thread) rather than through structlog and stdlib
logging, which cost up to a third of the throughput of the fast endpoints (bench/RESULTS.md).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ostiary.web import logs

__all__ = [
    "BodyTooLarge",
    "Metrics",
    "RequestContextMiddleware",
    "body_too_large",
    "security_headers",
]

log = structlog.get_logger("ostiary.access")
_access_level = logging.getLogger("ostiary.access")  # asked first: a dropped event is not free
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
# Request ids correlate log lines; they are not secrets, so a PRNG seeded from the OS per
# process does: a system call (os.urandom) per request was 1-2 % of an API-key verification.
_request_ids = random.Random()  # noqa: S311 (identifiers, not secrets)
_MAX_BODY = 1024 * 1024
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_HSTS = (b"strict-transport-security", b"max-age=31536000")


def security_headers(issuer: str | None) -> tuple[tuple[bytes, bytes], ...]:
    """The headers added to every response of an app serving ``issuer``."""
    if issuer is not None and issuer.startswith("https://"):
        return (_NOSNIFF, _HSTS)
    return (_NOSNIFF,)


class Metrics:
    """Per-app registry, so several apps in one process (tests) do not collide.

    Under ``ostiary serve --workers N`` (cli/server.py) each worker process has its own app and
    its own counters; the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start,
    so prometheus_client keeps the values in files there (one per process), and a scrape,
    answered by whichever worker accepts it, sums every worker's (``MultiProcessCollector``;
    histograms and counters add up across processes, dead ones included).
    """

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ostiary_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ostiary_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        if self.multiprocess_dir is None:
            self.registry.register(_DroppedLogLines())
        else:
            # A collector reads this process's count only; a counter's file is summed.
            dropped = Counter(
                "ostiary_log_lines_dropped",
                "Log lines dropped because stderr stayed blocked or was closed.",
                registry=self.registry,
            )
            logs.on_dropped_lines(dropped.inc)
        # labels() takes a lock and builds a key on every call; the children are reused.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def exposition(self) -> bytes:
        """The Prometheus text format of this app's metrics, or every worker's summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def observe(self, route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 4096:  # bounded: routes are templates, methods few
                self._children.clear()
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)


class _DroppedLogLines(Collector):
    """Log lines the writer could not write (web/logs.py: stderr blocked, closed): never silent."""

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "ostiary_log_lines_dropped",
            "Log lines dropped because stderr stayed blocked or was closed.",
        )
        family.add_metric([], logs.dropped_lines())
        yield family


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        headers: tuple[tuple[bytes, bytes], ...] = (_NOSNIFF,),
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.headers = headers
        self.access_log = access_log  # OSTIARY_ACCESS_LOG

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming
            if incoming and _REQUEST_ID.fullmatch(incoming)
            else f"{_request_ids.getrandbits(64):016x}"
        )
        scope.setdefault("state", {})["request_id"] = request_id
        bound = logs.REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()
        try:
            declared = _header(scope, b"content-length")
            if declared is not None and (
                not (declared.isascii() and declared.isdigit()) or int(declared) > _MAX_BODY
            ):
                await _reject_too_large(send, request_id, self.headers)
                status = 413
                return

            # RFC 9110 section 9.3.2: HEAD is GET without the content.
            head = scope["method"] == "HEAD"
            if head:
                scope = {**scope, "method": "GET"}

            extra = self.headers

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if head and message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [
                        *message.get("headers", ()),
                        *extra,
                        (b"x-request-id", request_id.encode()),
                    ]
                await send(message)

            received = 0

            async def receive_limited() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > _MAX_BODY:
                        raise BodyTooLarge()
                return message

            await self.app(scope, receive_limited, send_wrapper)
        except BodyTooLarge:  # read before any handler could answer it (see below)
            await _reject_too_large(send, request_id, self.headers)
            status = 413
        finally:  # every way out, the early 413 included
            self._observe(scope, status, started, request_id)
            logs.REQUEST_ID.reset(bound)

    def _observe(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = _route_template(scope)
        method = scope["method"]
        self.metrics.observe(route, method, status, elapsed)
        if not self.access_log or not _access_level.isEnabledFor(logging.INFO):
            return
        access = logs.access_log()
        if access is not None:
            access.request(method, route, status, round(elapsed * 1000, 2), request_id)
            return
        # Console mode, or an application that embeds ours and configured logging itself.
        log.info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )


class BodyTooLarge(Exception):
    """A body went over 1 MiB while it was read. Raised inside the app (request.body()), it is
    answered by :func:`body_too_large`, registered as the app's handler for it, so that
    FastAPI's ServerErrorMiddleware (inside these middlewares) does not take it for a 500."""


_TOO_LARGE = b'{"error":"request_too_large","error_description":"body over 1 MiB"}'


async def body_too_large(_request: Request, _exc: Exception) -> Response:
    return Response(_TOO_LARGE, status_code=413, media_type="application/json")


async def _reject_too_large(
    send: Send, request_id: str, extra: tuple[tuple[bytes, bytes], ...]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                *extra,
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send(
        {
            "type": "http.response.body",
            "body": _TOO_LARGE,
        }
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
