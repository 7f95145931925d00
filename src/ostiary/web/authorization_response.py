"""Delivering authorization responses, and recording the failed ones.

- RFC 6749 section 4.1.2 (success) and 4.1.2.1 (errors), RFC 9207 (``iss`` in both).
- ``query``, the default mode of ``response_type=code`` (OAuth 2.0 Multiple Response Type
  Encoding Practices section 2.1): a 303 to the redirect URI with the parameters in its query.
- ``form_post`` (OAuth 2.0 Form Post Response Mode section 2): an HTML page whose form
  (``action`` = the redirect URI, ``method="post"``) a script submits as soon as it loads; a
  button in ``<noscript>`` does it by hand. Its Content-Security-Policy allows that one
  script (CSP Level 3 hash-source), form submission to the redirect URI's origin and nothing
  else; ``Cache-Control: no-store``: the page holds a code.
- A failed request is logged like the token endpoint's errors (``oauth_error`` with the
  internal hint, the client id, never a secret or personal data) and audited as
  ``authorize``/``failure`` with the client id, the error code and the address. ``access_denied``
  is the user's own answer, audited as ``consent.deny`` already.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.oauth.authorize import AuthorizationError, redirect_with
from ostiary.web.deps import client_ip
from ostiary.web.pages import render
from ostiary.web.runtime import Unit

__all__ = ["deliver", "record_failure", "refused"]

log = structlog.get_logger("ostiary.oauth")

_SUBMIT = "document.forms[0].submit();"
_SUBMIT_HASH = base64.b64encode(hashlib.sha256(_SUBMIT.encode()).digest()).decode()


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def deliver(redirect_uri: str, params: dict[str, str], response_mode: str) -> Response:
    """The authorization response ``params`` to ``redirect_uri`` in ``response_mode``."""
    if response_mode != "form_post":
        location = redirect_with(redirect_uri, params)
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
    # render() sets PAGE_HEADERS: no-store, no framing, no referrer to the client's origin.
    response = render("form_post.html", action=redirect_uri, fields=params.items(), script=_SUBMIT)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'sha256-{_SUBMIT_HASH}'; "
        f"form-action {_origin(redirect_uri)}; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _printable_id(client_id: str | None) -> str | None:
    """The client id as received, if it can be one (it may be anything an attacker sent)."""
    if not client_id or len(client_id) > 128 or not client_id.isprintable():
        return None
    return client_id


async def record_failure(
    unit: Unit,
    request: Request,
    *,
    client_id: str | None,
    error: str,
    description: str,
    hint: str = "",
) -> None:
    """Log and audit a failed authorization request (before its answer is sent)."""
    target = _printable_id(client_id)
    log.info(
        "oauth_error",
        endpoint="/authorize",
        error=error,
        hint=hint or description,
        client_id=target,
    )
    if error == "access_denied":
        return
    await unit.audit.record(
        "authorize",
        "failure",
        target=target,
        ip=client_ip(request),
        details={"error": error, "reason": description[:200]},
    )


async def refused(
    unit: Unit, request: Request, error: AuthorizationError, *, client_id: str | None, issuer: str
) -> Response:
    """An error sent back to the client's verified redirect URI (RFC 6749 4.1.2.1)."""
    await record_failure(
        unit,
        request,
        client_id=client_id,
        error=error.error,
        description=error.description,
        hint=error.hint,
    )
    params = {"error": error.error, "error_description": error.description, "iss": issuer}
    if error.state:
        params["state"] = error.state
    return deliver(error.redirect_uri, params, error.response_mode)
