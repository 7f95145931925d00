"""CPU time the access log adds to a request, without the network or the rest of the app.

``RequestContextMiddleware`` (request id, metrics, access log) around an app that answers 200
at once, driven in-process on uvloop, with ``configure_logging`` writing to a file: per request,
the process CPU time (every thread, so the log writer's too) at ``info`` minus that at
``warning`` is what the access line costs. CPU time rather than wall time, so that other
processes on a shared machine change the figure little. Rounds alternate the two levels; the
median of each is printed.

    uv run python bench/access_log.py                       # the working tree
    PYTHONPATH=/tmp/old/src uv run python bench/access_log.py   # e.g. `git archive REF src`
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
import uvloop

import ostiary
from ostiary.web import logs
from ostiary.web.middleware import Metrics, RequestContextMiddleware


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _send(message: Any) -> None:
    pass


async def _requests(app: Any, count: int) -> None:
    for i in range(count):
        scope = {"type": "http", "method": "POST", "path": "/token", "headers": []}
        await app(scope, _receive, _send)
        if i % 16 == 15:
            await asyncio.sleep(0)  # as between requests of a loaded server


def _round(level: str, count: int, log_file: Path) -> float:
    """CPU µs per request at ``level``, the writing of every line included."""
    with log_file.open("w") as stream:
        logs.configure_logging(level, json=True, **_stream_arg(stream))
        app = RequestContextMiddleware(_ok, Metrics())
        started = time.process_time()
        uvloop.run(_requests(app, count))
        stop = getattr(logs, "stop_logging", None)
        if stop is not None:
            stop()
        for handler in logging.getLogger().handlers:
            handler.flush()
        spent = time.process_time() - started
    logging.getLogger().handlers[:] = []
    structlog.reset_defaults()
    return spent / count * 1e6


def _stream_arg(stream: Any) -> dict[str, Any]:
    # The code before the log writer took no stream: point stderr at the file instead.
    if "stream" in logs.configure_logging.__code__.co_varnames:
        return {"stream": stream}
    sys.stderr = stream
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--level", choices=("info", "warning"), help="only this level (e.g. under valgrind)"
    )
    args = parser.parse_args()
    stderr = sys.stderr
    levels = [args.level] if args.level else ["info", "warning"]
    results: dict[str, list[float]] = {level: [] for level in levels}
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "server.log"
        for _ in range(args.rounds):
            for level in levels:
                results[level].append(_round(level, args.requests, log_file))
                sys.stderr = stderr
    print(f"source: {Path(ostiary.__file__).parent}")
    for level, values in results.items():
        print(f"{level}: median {statistics.median(values):.1f} µs/request", end=" ")
        print("(" + ", ".join(f"{v:.1f}" for v in values) + ")")
    if len(levels) == 2:
        info, warning = (statistics.median(results[level]) for level in levels)
        print(f"access log: {info - warning:.1f} µs/request")


if __name__ == "__main__":
    main()
