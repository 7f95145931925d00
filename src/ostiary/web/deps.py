"""Small accessors shared by routes (kept as plain functions: no dependency-injection chains)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from ostiary.protocol.forms import FormError, parse_form
from ostiary.web.errors import PageError
from ostiary.web.runtime import Runtime

__all__ = ["client_ip", "first_headers", "read_body", "read_form", "runtime_of"]


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def client_ip(request: Request) -> str | None:
    """The peer address: the client's, from ``X-Forwarded-For``, when the peer is a proxy
    listed in ``OSTIARY_FORWARDED_ALLOW_IPS`` (uvicorn's proxy-headers middleware, set up by
    ``ostiary serve``, rewrites the peer; anyone else's header is ignored)."""
    client = request.scope.get("client")  # (host, port), as ``request.client`` reads it
    return client[0] if client is not None else None


def first_headers(request: Request, names: tuple[bytes, ...]) -> list[str | None]:
    """The first value of each of ``names`` (lower case) among the raw headers, decoded as
    latin-1 as Starlette does, found in one pass (the fast-lane endpoints); None for a header
    the request did not send."""
    found: list[bytes | None] = [None] * len(names)
    for name, value in request.scope["headers"]:
        if name in names:
            index = names.index(name)
            if found[index] is None:
                found[index] = value
    return [None if value is None else value.decode("latin-1") for value in found]


async def read_body(receive: Receive) -> bytes:
    """The whole body, straight from ASGI ``receive`` (what ``Request.body`` does, without its
    async generator), for the fast-lane endpoints. RequestContextMiddleware's ``receive``
    enforces the size limit."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body; repeated or malformed parameters are a 400, not a guess."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise PageError(415, "Send the form as application/x-www-form-urlencoded.")
    try:
        return parse_form(await request.body())
    except FormError as exc:
        raise PageError(400, f"Malformed form: {exc}.") from exc
