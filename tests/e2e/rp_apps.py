"""Shared pieces of the relying-party tests (``test_rp_*.py``): real RP web apps signing in and
out against a real ``ostiary dev`` in Chromium.

Each relying party is a real web app bound to 127.0.0.1 on a port of its own: Flask in a thread
of the test process (:func:`wsgi_thread`), Django and Node in a process (:class:`AppProcess`,
speaking the small stdin/stdout protocol of ``rp_process.py``: port out, configuration in,
ready out), because their configuration is global to a process. Clients are registered with
``ostiary clients create ... --json``, with the defaults plus what a user must give.

Fixtures here are imported explicitly by the test modules that use them.
"""

from __future__ import annotations

import contextlib
import selectors
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from werkzeug.serving import make_server

from tests.e2e.harness import Server, base_env
from tests.e2e.oauth_fixtures import TIMEOUT_MS, browser_sign_in

__all__ = [
    "RP_PROCESS",
    "AppProcess",
    "approve_if_asked",
    "browser_page",
    "needs_server",
    "register_rp",
    "wsgi_thread",
]

RP_PROCESS = Path(__file__).with_name("rp_process.py")
START_TIMEOUT_S = 60.0  # busy CI machines; Django's migrations take ~2 s on a quiet one


def needs_server(*features: str) -> pytest.MarkDecorator:
    """Marks an RP test that the server cannot pass yet: it needs the issue 10 ``features``.

    Strict: once the server has them the test passes, XPASS fails the run, and this marker
    must go (search for ``needs_server(``).
    """
    return pytest.mark.xfail(
        strict=True, reason="needs issue 10 server features: " + ", ".join(features)
    )


def register_rp(server: Server, name: str, *args: str) -> dict[str, Any]:
    """``ostiary clients create --name NAME ARGS --json``: the created record, secret included."""
    done = server.cli("clients", "create", "--name", name, *args, "--json")
    assert done.returncode == 0, f"clients create {args}: {done.stderr or done.stdout}"
    record: dict[str, Any] = orjson.loads(done.stdout)
    return record


# -- apps --------------------------------------------------------------------------------


class AppProcess:
    """An RP app in a process: ``{"port": N}`` on stdout, one JSON line of environment
    variables in on stdin, ``{"ready": true}`` on stdout; stderr goes to ``log_path``."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.log_path = cwd / "rp.stderr.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env={**base_env(), **env},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.port = int(self._read()["port"])
        self.origin = f"http://127.0.0.1:{self.port}"

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise AssertionError(f"the RP app said nothing (exit {self.process.returncode}):\n")
        message: dict[str, Any] = orjson.loads(line)
        return message

    def configure(self, variables: Mapping[str, str]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(dict(variables)).decode() + "\n")
        self.process.stdin.flush()
        try:
            assert self._read() == {"ready": True}
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.log_tail()}") from None

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return f"\n--- RP app log ---\n{text[-chars:]}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def app_process(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Iterator[AppProcess]:
    app = AppProcess(argv, cwd=cwd, env=env)
    try:
        yield app
    finally:
        app.stop()


@contextlib.contextmanager
def django_process(project: Path, settings_module: str) -> Iterator[AppProcess]:
    """``rp_process.py django`` for the project written in ``project``."""
    env = {"DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": str(project)}
    with app_process([sys.executable, str(RP_PROCESS), "django"], cwd=project, env=env) as app:
        yield app


@contextlib.contextmanager
def wsgi_thread(app: Any) -> Iterator[str]:
    """Serve a WSGI ``app`` (Flask) on a free port of 127.0.0.1 in a thread; yields its origin.

    The port is known before the first request, so the app may finish its configuration
    (register the OAuth client) after this started.
    """
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="rp-wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# -- the browser -------------------------------------------------------------------------


@contextlib.contextmanager
def browser_page(chromium: Any) -> Iterator[Any]:
    """A page in a fresh browser context (own cookies); page errors fail the test."""
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert errors == [], errors
    finally:
        context.close()


def approve_if_asked(page: Any) -> bool:
    """Allow on Ostiary's consent page when it is shown; whether it was."""
    if page.locator("#consent-form").count() == 0:
        return False
    with page.expect_navigation():
        page.click("#allow")
    return True


def sign_in_at_ostiary(page: Any, server: Server, email: str, password: str) -> None:
    """On Ostiary's sign-in page (where the RP sent the browser): sign in, then consent."""
    assert page.url.startswith(f"{server.base_url}/login"), page.url
    browser_sign_in(page, email, password)
    if page.url.startswith(server.base_url):
        assert approve_if_asked(page), f"stuck at Ostiary: {page.url}\n{page.content()[:2000]}"
