"""The one place where errors become responses (STYLE.md habit 6).

Browser routes answer with an HTML page, API routes with JSON; the management API (/api/v1)
with ``{"error": {"code": ..., "message": ...}}`` and stable codes (:class:`ApiError`, and the
``code`` of the tenancy errors, features/orgs/models.py); nothing answers 500 for bad input. An
unexpected exception is logged with the request id and gets a plain 500 page that reveals
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from ostiary.web.pages import render

__all__ = [
    "API_PREFIX",
    "ApiError",
    "PageError",
    "api_error_response",
    "install_error_handlers",
    "page_error_response",
]

API_PREFIX = "/api/"

log = structlog.get_logger("ostiary.web")

_TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Something went wrong",
}


class PageError(Exception):
    """An error shown to a person in a browser flow."""

    def __init__(
        self, status_code: int, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers or {}


class ApiError(Exception):
    """An error of the management API: HTTP status, stable ``code``, message for people."""

    def __init__(
        self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}


def api_error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status_code,
        headers=headers,
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(exc.status_code, exc.code, exc.message, exc.headers)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def error_response(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    title = _TITLES.get(status_code, "Error")
    if _wants_html(request):
        response: Response = render(
            "error.html",
            status_code=status_code,
            title=title,
            message=message,
            request_id=request.scope.get("state", {}).get("request_id"),
        )
    else:
        response = JSONResponse(
            {"error": title.lower().replace(" ", "_"), "error_description": message},
            status_code=status_code,
        )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return page_error_response(request, exc)


def page_error_response(request: Request, exc: PageError) -> Response:
    """The answer to a :class:`PageError`, for a route that must not raise it (its
    transaction has to commit, e.g. to keep the audit event of the failure)."""
    if _wants_html(request) or request.method == "POST":
        response: Response = render(
            "error.html",
            status_code=exc.status_code,
            title=_TITLES.get(exc.status_code, "Error"),
            message=exc.message,
        )
        response.headers.update(exc.headers)
        return response
    return error_response(request, exc.status_code, exc.message, exc.headers)


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    # FastAPI keeps included routers as nodes; their own routes are the leaves.
    for route in routes:
        nested = getattr(route, "original_router", None)
        yield from _leaf_routes(nested.routes) if nested is not None else (route,)


def _allowed_methods(request: Request) -> str:
    """Every method any route of this path accepts (RFC 9110 section 15.5.6: ``Allow``)."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail) if exc.detail else _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    if _is_api(request):
        code = _TITLES.get(exc.status_code, "error").lower().replace(" ", "_")
        return api_error_response(exc.status_code, code, message, headers)
    return error_response(request, exc.status_code, message, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid')}".strip(": ")
    if _is_api(request):
        if first.get("type") == "json_invalid":
            return api_error_response(400, "invalid_json", "the body is not valid JSON")
        return api_error_response(422, "invalid_request", message[:500])
    return error_response(request, 400, message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled_exception", exc_type=type(exc).__name__, path=request.url.path)
    if _is_api(request):
        return api_error_response(500, "internal_error", "An unexpected error occurred.")
    return error_response(request, 500, "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PageError, _page_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
