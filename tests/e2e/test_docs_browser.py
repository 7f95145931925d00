"""``/docs`` in a real browser (Debian's Chromium): Swagger UI loads under its Content Security
Policy, from the pinned CDN URLs whose Subresource Integrity digests match the published files,
and a changed file is refused.

The machine has no route to the CDN, so the browser's requests for it are answered with the
files of the npm package ``swagger-ui-dist`` at the version pinned in tests/e2e/js/package.json
(the CDN serves npm packages unchanged). The server is ``ostiary dev``, where /docs is on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Server
from tests.e2e.oauth_fixtures import (  # noqa: F401 (fixtures)
    TIMEOUT_MS,
    chromium,
    csp_blocked,
    js_deps,
    one_backend,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/swagger-ui-dist@([0-9.]+)/([\w.-]+)$")


def _open_docs(browser: Any, server: Server, dist: Path, *, tamper: bool) -> dict[str, Any]:
    from playwright.sync_api import Route

    served: list[str] = []
    console: list[str] = []
    page_errors: list[str] = []

    def from_npm(route: Route) -> None:
        match = CDN.match(route.request.url)
        assert match, f"unexpected CDN URL {route.request.url}"
        version, name = match.groups()
        pinned = (dist / "package.json").read_text()
        assert f'"version": "{version}"' in pinned, "/docs and package.json pin other versions"
        body = (dist / name).read_bytes()
        if tamper:
            body += b"\n/* changed */"
        served.append(name)
        content_type = "text/css" if name.endswith(".css") else "application/javascript"
        # crossorigin="anonymous": the CDN answers with CORS, and SRI needs it.
        headers = {"content-type": content_type, "access-control-allow-origin": "*"}
        route.fulfill(status=200, body=body, headers=headers)

    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^https://"), from_npm)
    page = context.new_page()
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        response = page.goto("/docs")
        assert response is not None and response.status == 200
        if not tamper:
            title = page.locator(".swagger-ui .info .title")
            title.wait_for()
            text = title.inner_text()
            operations = page.locator(".opblock").count()
        else:
            page.wait_for_load_state("load")
            text, operations = "", page.locator(".opblock").count()
        return {
            "served": served,
            "console": console,
            "errors": page_errors,
            "title": text,
            "operations": operations,
        }
    finally:
        context.close()


@pytest.fixture
def open_docs(
    chromium: Any,  # noqa: F811 (imported fixture)
    server: Server,
    js_deps: Path,  # noqa: F811 (imported fixture)
) -> Callable[[bool], dict[str, Any]]:
    dist = js_deps / "node_modules" / "swagger-ui-dist"
    return lambda tamper: _open_docs(chromium, server, dist, tamper=tamper)


def test_swagger_ui_runs_under_its_csp_with_matching_integrity(
    open_docs: Callable[[bool], dict[str, Any]],
) -> None:
    seen = open_docs(False)
    assert sorted(seen["served"]) == ["swagger-ui-bundle.js", "swagger-ui.css"]
    assert "Ostiary" in seen["title"]
    assert seen["operations"] > 10  # the schema was fetched (connect-src 'self') and rendered
    assert csp_blocked(seen["console"]) == [], seen["console"]
    assert not [line for line in seen["console"] if "integrity" in line.lower()], seen["console"]
    assert seen["errors"] == []


def test_a_changed_file_is_refused_by_integrity(
    open_docs: Callable[[bool], dict[str, Any]],
) -> None:
    seen = open_docs(True)
    assert seen["served"], "the browser never asked for the pinned files"
    assert [line for line in seen["console"] if "integrity" in line.lower()], seen["console"]
    assert seen["operations"] == 0
