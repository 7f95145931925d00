"""HTML rendering (Jinja2, autoescaped) with the security headers every page carries."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ["PAGE_HEADERS", "render"]

_env = Environment(
    loader=PackageLoader("ostiary.web", "templates"),
    autoescape=select_autoescape(default=True),
    enable_async=False,
)

# No ``form-action``: browsers apply it to the redirects that follow a form post, and our forms
# (sign-in, consent, logout) end in a redirect to the client's registered URI on another origin.
# OWASP Secure Headers: no framing (clickjacking), no sniffing, no referrer leaks, no caching
# of pages that show personal data, no referrer to other sites. Scripts only from our origin
# (web/static/webauthn.js, the passkey ceremonies; no inline script), which may call back only
# our own origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
        "img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    # X-Content-Type-Options: on every response, pages included (web/middleware.py).
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on our own
    # form posts, and the CSRF guard's Origin check would refuse every sign-in.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
