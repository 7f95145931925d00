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
import textwrap
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from werkzeug.serving import make_server

from tests.e2e.harness import Server, base_env
from tests.e2e.oauth_fixtures import TIMEOUT_MS, browser_sign_in

__all__ = [
    "RP_PROCESS",
    "AppProcess",
    "approve_if_asked",
    "browser_page",
    "register_rp",
    "wsgi_thread",
]

RP_PROCESS = Path(__file__).with_name("rp_process.py")
START_TIMEOUT_S = 60.0  # busy CI machines; Django's migrations take ~2 s on a quiet one


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

    def __init__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.log_path = log_dir / "rp.stderr.log"
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
def app_process(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_dir: Path
) -> Iterator[AppProcess]:
    """An :class:`AppProcess`, stopped on exit; its stderr goes to ``log_dir``/rp.stderr.log."""
    app = AppProcess(argv, cwd=cwd, env=env, log_dir=log_dir)
    try:
        yield app
    finally:
        app.stop()


DJANGO_COMMON = '''
"""What every relying-party Django project of the tests has (``from rp_common import *``)."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ["RP_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "rp_urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "rp.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING"},
        "mozilla_django_oidc": {"handlers": ["stderr"], "level": "DEBUG"},
    },
}
'''

DJANGO_VIEWS = '''
"""The page the relying parties land on: who is signed in to Django, and a sign-out form."""
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.utils.html import format_html


def me(request):
    if not request.user.is_authenticated:
        return HttpResponse('<p id="anonymous">Not signed in.</p>')
    return HttpResponse(format_html(
        '<p>Signed in to Django as <span id="email">{}</span>.</p>'
        '<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken"'
        ' value="{}"><button type="submit" id="rp-sign-out">Sign out</button></form>',
        request.user.email,
        request.GET.get("logout", ""),
        get_token(request),
    ))
'''


@contextlib.contextmanager
def django_process(project: Path, settings: str, urls: str) -> Iterator[AppProcess]:
    """``rp_process.py django`` for a project written in ``project``: ``rp_common.py``
    (:data:`DJANGO_COMMON`), ``rp_views.py`` (``me``: who is signed in; ``?logout=PATH`` adds a
    sign-out form posting there), and the test's ``rp_settings.py`` and ``rp_urls.py``."""
    files = {
        "rp_common.py": DJANGO_COMMON,
        "rp_views.py": DJANGO_VIEWS,
        "rp_settings.py": settings,
        "rp_urls.py": urls,
    }
    for name, text in files.items():
        (project / name).write_text(textwrap.dedent(text), encoding="utf-8")
    env = {"DJANGO_SETTINGS_MODULE": "rp_settings", "PYTHONPATH": str(project)}
    argv = [sys.executable, str(RP_PROCESS), "django"]
    with app_process(argv, cwd=project, env=env, log_dir=project) as app:
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
    assert page.url.startswith(f"{server.base_url}/login"), (
        f"not sent to Ostiary's sign-in page but to {page.url}\n{server.logs_tail(5)}"
    )
    browser_sign_in(page, email, password)
    if page.url.startswith(server.base_url):
        assert approve_if_asked(page), f"stuck at Ostiary: {page.url}\n{page.content()[:2000]}"
