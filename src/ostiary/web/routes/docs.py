"""``/docs``: Swagger UI for /openapi.json, mounted only when ``OSTIARY_API_DOCS`` is on (by
default in dev mode only).

The page shares its origin with the sign-in pages, so what it runs is pinned: Swagger UI comes
from the CDN at one exact version with Subresource Integrity (W3C SRI: the browser refuses
bytes whose SHA-384 differs), and a Content Security Policy (CSP Level 3) allows scripts from
that CDN path and the one inline initializer (by hash) only, fetches to this origin only, and
no framing. FastAPI's own page loads ``swagger-ui-dist@5`` (whatever 5.x the CDN serves
today) without integrity and without a policy.

To move to another Swagger UI version: change ``SWAGGER_UI_VERSION`` and the two digests
(``openssl dgst -sha384 -binary FILE | base64`` over the files of the npm package
``swagger-ui-dist``, which the CDN serves unchanged), and the pinned version in
tests/e2e/js/package.json, whose copy the browser test serves in the CDN's place.
"""

from __future__ import annotations

import base64
import hashlib

from fastapi import APIRouter
from starlette.responses import HTMLResponse

__all__ = ["DOCS_CSP", "SWAGGER_UI_VERSION", "router"]

SWAGGER_UI_VERSION = "5.35.0"
_CDN = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}/"
_JS_SRI = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
_CSS_SRI = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"

# Relative URL: /docs -> /openapi.json, also under a proxy's path prefix. No validator badge
# (it would load an image from validator.swagger.io).
_INIT = (
    'SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", '
    "deepLinking: true, validatorUrl: null});"
)
_INIT_HASH = base64.b64encode(hashlib.sha256(_INIT.encode()).digest()).decode()

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ostiary API</title>
<link rel="stylesheet" href="{_CDN}swagger-ui.css" integrity="{_CSS_SRI}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{_CDN}swagger-ui-bundle.js" integrity="{_JS_SRI}" crossorigin="anonymous"></script>
<script>{_INIT}</script>
</body>
</html>
"""

# Swagger UI sets style attributes from its scripts: 'unsafe-inline' for styles only.
DOCS_CSP = (
    "default-src 'none'; "
    f"script-src {_CDN} 'sha256-{_INIT_HASH}'; "
    f"style-src {_CDN} 'unsafe-inline'; "
    "img-src 'self' data:; "
    "connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_HEADERS)
