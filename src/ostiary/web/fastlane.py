"""Plain ASGI dispatch for the hot-path endpoints (ARCHITECTURE.md, "Request path of a token
grant").

The token endpoint (RFC 6749 section 3.2), introspection (RFC 7662 section 2), revocation
(RFC 7009 section 2) and userinfo (OpenID Connect Core 1.0 section 5.3) are plain
``async def endpoint(request) -> Response`` functions declared on a FastAPI router, which
keeps them in the OpenAPI schema. Served by FastAPI, each request would also pass route
matching over every route of the app, the exception middleware, the exit-stack middleware and
the request/response wrappers, which together cost more CPU than these endpoints themselves.

``FastLane`` is mounted inside our own middlewares (request id, access log, metrics, body
limit, CORS), and these sit in front of the whole FastAPI application (web/app.py,
``OstiaryApp``), not inside its middleware stack, so a fast-lane request does not pass through
FastAPI's and Starlette's outer layers either (the telemetry check, ServerErrorMiddleware, the
body-limit wrapper: 15 % of the token endpoint's CPU in a py-spy profile). The lane answers
its (method, path) pairs with one dict lookup and hands every other request to FastAPI
unchanged, so ``GET /token`` still gets the router's 405 with ``Allow`` (RFC 9110 section
15.5.6) and HEAD, which RequestContextMiddleware turns into GET (RFC 9110 section 9.3.2), is
served like GET. What FastAPI would do for these
requests and the lane keeps:

- ``scope["route"]`` and ``scope["endpoint"]`` are the declared route and its function, so
  metrics and the access log name the route template;
- an exception with a handler registered on the app (web/errors.py) becomes that handler's
  response, as in Starlette's ExceptionMiddleware; any other exception gets the app's
  ``Exception`` handler's 500 and is raised again for the server to log, as
  ServerErrorMiddleware does.

Only routes that take nothing but the raw ``Request`` can take the lane (``lanes_of`` checks):
there is no dependency, parameter or body model for FastAPI to resolve, so skipping it skips
no work the endpoint relies on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Endpoint", "FastLane", "Lane", "lanes_of"]

Endpoint = Callable[[Request], Awaitable[Response]]


class Lane(NamedTuple):
    route: APIRoute
    endpoint: Endpoint


def lanes_of(routes: Iterable[Any]) -> dict[tuple[str, str], Lane]:
    """(method, path) -> lane for each route; a route that needs FastAPI is a ValueError."""
    lanes: dict[tuple[str, str], Lane] = {}
    for route in routes:
        if not isinstance(route, APIRoute):
            raise ValueError(f"{route!r} is not a FastAPI route")
        dependant = route.dependant
        needs_fastapi = (
            "{" in route.path_format
            or not inspect.iscoroutinefunction(route.endpoint)
            or len(inspect.signature(route.endpoint).parameters) != 1
            or dependant.request_param_name is None
            or dependant.dependencies
            or dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
        )
        if needs_fastapi:
            raise ValueError(f"{route.path} ({route.name}) needs FastAPI's request handling")
        for method in route.methods or ():
            lanes[(method, route.path_format)] = Lane(route, route.endpoint)
    return lanes


def _route_path(scope: Scope) -> str:
    """The path the router would match: without the ``root_path`` an app behind a proxy has."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class FastLane:
    """ASGI middleware serving ``lanes`` directly; everything else goes on to ``app``.

    ``exception_handlers`` is the app's own mapping (``app.exception_handlers``), read at each
    exception so that handlers added later count. As in Starlette, the ``500`` and
    ``Exception`` entries belong to ServerErrorMiddleware and are not used here.
    """

    def __init__(
        self,
        app: ASGIApp,
        lanes: Mapping[tuple[str, str], Lane],
        exception_handlers: Mapping[Any, Callable[..., Any]],
    ) -> None:
        self.app = app
        self._lanes = dict(lanes)
        self._handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            lane = self._lanes.get((scope["method"], _route_path(scope)))
            if lane is not None:
                scope["route"] = lane.route
                scope["endpoint"] = lane.endpoint
                request = Request(scope, receive, send)
                try:
                    response = await lane.endpoint(request)
                except Exception as exc:
                    found = self._handler_for(exc)
                    last_resort = found is None
                    handler = found or self._handlers.get(Exception) or self._handlers.get(500)
                    if handler is None:
                        raise
                    response = handler(request, exc)
                    if inspect.isawaitable(response):
                        response = await response
                    if last_resort:
                        await response(scope, receive, send)
                        raise  # the server logs it, as after ServerErrorMiddleware's answer
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Callable[..., Any] | None:
        """The handler ExceptionMiddleware would pick: by status code, then by class (MRO)."""
        handlers = self._handlers
        if isinstance(exc, HTTPException) and exc.status_code != 500:
            by_status = handlers.get(exc.status_code)
            if by_status is not None:
                return by_status
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            handler = handlers.get(cls)
            if handler is not None:
                return handler
        return None
