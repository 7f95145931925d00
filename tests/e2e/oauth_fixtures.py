"""Shared pieces of the OAuth/OIDC end-to-end tests (``test_oauth_*.py``, ``test_demo_browser.py``).

Everything talks to a real ``ostiary dev`` subprocess (the ``server`` fixture of
``conftest.py``) from the outside: clients are registered with the CLI, the browser part of
the authorization code flow is scripted over HTTP with the real HTML forms (or driven in
Debian's Chromium), and tokens are checked against the JWKS fetched over HTTP.

Fixtures here are imported explicitly by the test modules that use them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.harness import BACKENDS, Server
from tests.e2e.httpflow import find_form, login_error, sign_in, submit

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "FORM_ACTION_HINT",
    "JS_DIR",
    "ORIGIN_NULL_HINT",
    "TIMEOUT_MS",
    "StaticServer",
    "authorize_over_http",
    "browser_sign_in",
    "callback_params",
    "chromium",
    "create_clients",
    "csp_blocked",
    "decode_verified",
    "fetch_jwks",
    "js_deps",
    "one_backend",
    "require_or_skip",
    "start_clients",
    "static_server",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
JS_DIR = Path(__file__).parent / "js"
SIGNING_ALGS = ["ES256", "RS256", "EdDSA"]


@pytest.fixture(scope="module", params=BACKENDS[-1:], name="backend")
def one_backend(request: pytest.FixtureRequest) -> str:
    """Overrides conftest's ``backend`` in the modules that import it: one server, on the most
    production-like backend offered (PostgreSQL + Redis when configured, else SQLite).

    For the slow JavaScript and browser clients, whose subject is the protocol surface rather
    than storage; the Authlib suite runs on every backend.
    """
    name: str = request.param
    return name


def require_or_skip(reason: str) -> None:
    """Fail when browser and Node tests are required (``OSTIARY_TEST_REQUIRE_BROWSER=1``, set by
    ``scripts/check.py``, so the README's check never skips them silently); skip otherwise."""
    if os.environ.get("OSTIARY_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(
            f"{reason}. The browser and Node.js tests are required here "
            "(OSTIARY_TEST_REQUIRE_BROWSER=1, set by scripts/check.py); "
            "set OSTIARY_TEST_REQUIRE_BROWSER=0 to skip them on purpose"
        )
    pytest.skip(reason)


# -- clients (registered with the CLI, like an operator would) ----------------------------


def start_clients(server: Server, **specs: list[str]) -> Callable[[], dict[str, dict[str, Any]]]:
    """Start ``clients create --name KEY ARGS --json`` per spec, in one process beside this
    one (``Server.cli_many``), without waiting.

    Returns a function that waits for them and answers KEY -> the created record (with its
    ``client_secret``), so that other CLI calls (``create_users``) can overlap with these.
    """
    keys = list(specs)
    running = server.cli_many(
        [(["clients", "create", "--name", key, *specs[key], "--json"], None) for key in keys]
    )

    def finish() -> dict[str, dict[str, Any]]:
        created: dict[str, dict[str, Any]] = {}
        for key, (code, out, err) in zip(keys, running(), strict=True):
            assert code == 0, f"clients create {key} {specs[key]}: {err or out}"
            created[key] = orjson.loads(out)
        return created

    return finish


def create_clients(server: Server, **specs: list[str]) -> dict[str, dict[str, Any]]:
    """``clients create --name KEY ARGS --json`` for each spec; KEY -> record."""
    return start_clients(server, **specs)()


# -- the browser part of the code flow, scripted over HTTP --------------------------------


def authorize_over_http(
    browser: httpx.Client,
    url: str,
    email: str,
    password: str,
    *,
    expect_consent: bool | None = None,
    decision: str = "allow",
) -> httpx.Response:
    """Follow an authorization request through sign-in and consent like a person would.

    ``browser`` has its own cookie jar and does not follow redirects. Signs in when sent to
    /login, answers the consent page with ``decision`` when shown (``expect_consent``
    asserts whether it is).
    Returns the final response: normally the 303 to the client's redirect URI, which is
    never followed (it needs no server behind it).
    """
    response = browser.get(url)
    if response.status_code == 303 and response.headers["location"].startswith("/login?"):
        next_param = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
        assert next_param.startswith("/authorize?"), next_param
        signed = sign_in(browser, email, password, next_param=next_param)
        assert signed.status_code == 303, (signed.status_code, login_error(signed.text))
        assert signed.headers["location"] == next_param
        response = browser.get(next_param)
    consent_shown = response.status_code == 200 and 'id="consent-form"' in response.text
    if expect_consent is not None:
        assert consent_shown is expect_consent, (response.status_code, response.text[:1000])
    if consent_shown:
        # html.parser unescapes attribute values: ``request`` is the raw query string again.
        form = find_form(response.text, "/authorize/consent")
        assert set(form.fields) == {"csrf_token", "request"}, form.fields
        response = submit(browser, form, decision=decision)
    return response


def callback_params(response: httpx.Response, redirect_uri: str) -> dict[str, str]:
    """The query of a 303 to ``redirect_uri`` (single-valued), asserting where it goes."""
    assert response.status_code == 303, (response.status_code, response.text[:1000])
    location = response.headers["location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == redirect_uri, location
    query = parse_qs(parts.query, keep_blank_values=True)
    assert all(len(v) == 1 for v in query.values()), query
    return {k: v[0] for k, v in query.items()}


# -- tokens ------------------------------------------------------------------------------


def fetch_jwks(base_url: str) -> KeySet:
    """The published JWK Set, fetched over HTTP like a resource server would."""
    response = httpx.get(f"{base_url}/.well-known/jwks.json", timeout=15.0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["keys"], body
    for key in body["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private members published"
    return KeySet.import_key_set(body)


def decode_verified(token: str, keys: KeySet) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT whose signature verifies against ``keys``."""
    decoded = jwt.decode(token, keys, algorithms=SIGNING_ALGS)
    return dict(decoded.header), dict(decoded.claims)


# -- JavaScript clients ------------------------------------------------------------------


def _node_tools() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


@pytest.fixture(scope="session")
def js_deps() -> Path:
    """``tests/e2e/js`` with its pinned npm packages installed (``npm ci``, once).

    Installs from package-lock.json only when node_modules is missing (or older than the
    lock file); a file lock keeps concurrent pytest workers from installing at the same time.
    """
    tools = _node_tools()
    if tools is None:
        require_or_skip("node and npm are needed for the JavaScript clients (Node.js 20+)")
    assert tools is not None
    node, npm = tools
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        require_or_skip(f"Node.js 20+ is needed, found {version}")
    installed = JS_DIR / "node_modules" / ".package-lock.json"  # written by npm ci
    lock_file = JS_DIR / "package-lock.json"
    with (Path(tempfile.gettempdir()) / "ostiary-e2e-npm-ci.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not installed.is_file() or installed.stat().st_mtime < lock_file.stat().st_mtime:
                done = subprocess.run(
                    [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                    cwd=JS_DIR,
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=300,
                )
                assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return JS_DIR


# -- a static web server for a single-page application -----------------------------------


@dataclass
class StaticServer:
    origin: str
    port: int


class _StaticHandler(SimpleHTTPRequestHandler):
    """Files of one directory, plus a few extra paths mapped to files elsewhere."""

    extra: dict[str, Path] = {}
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".html": "text/html; charset=utf-8",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def translate_path(self, path: str) -> str:
        mapped = self.extra.get(urlsplit(path).path)
        return str(mapped) if mapped is not None else super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Browsers drop connections at will (closed contexts, aborted loads): not an error."""


@contextlib.contextmanager
def static_server(directory: Path, extra: dict[str, Path] | None = None) -> Iterator[StaticServer]:
    """Serve ``directory`` (and ``extra`` URL paths -> files) on a free port of 127.0.0.1.

    Its origin differs from Ostiary's (another port), so a page served here is cross-origin.
    """
    handler = type("Handler", (_StaticHandler,), {"extra": dict(extra or {})})
    httpd = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, name="spa-static", daemon=True)
    thread.start()
    try:
        yield StaticServer(origin=f"http://127.0.0.1:{port}", port=port)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# -- Chromium ------------------------------------------------------------------------------

ORIGIN_NULL_HINT = (
    "If the form 'expired': with `Referrer-Policy: no-referrer` on the pages, Chromium sends "
    "`Origin: null` on same-origin form POSTs (Fetch standard, 'serializing a request origin') "
    "and CsrfGuard.is_valid (src/ostiary/web/csrf.py) refuses any Origin but the issuer's; "
    "PAGE_HEADERS (src/ostiary/web/pages.py) must keep `Referrer-Policy: same-origin`."
)
FORM_ACTION_HINT = (
    "If Chromium blocked the redirect: a CSP `form-action` on the pages (PAGE_HEADERS, "
    "src/ostiary/web/pages.py) also governs the redirects that follow a form submission, so it "
    "blocks the 303 from POST /login, POST /authorize/consent or POST /end_session to a "
    "client's (cross-origin) redirect URI or post-logout redirect URI."
)


def browser_sign_in(page: Any, email: str, password: str) -> None:
    """Fill in and submit the real sign-in form shown in ``page`` (Playwright, sync API)."""
    page.fill("#email", email)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#sign-in")
    refused = page.locator("#login-error")
    assert refused.count() == 0, (
        f"the browser cannot sign in: {refused.inner_text()!r} at {page.url}. {ORIGIN_NULL_HINT}"
    )


def csp_blocked(console: list[str]) -> list[str]:
    """Console lines of Content Security Policy violations."""
    return [line for line in console if "Content Security Policy" in line]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium for the module (each test gets a fresh context)."""
    if not CHROMIUM.exists():
        require_or_skip(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
