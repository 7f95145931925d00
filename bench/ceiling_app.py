"""The ceiling of one worker on this machine (issue 14): a bare ASGI app that reads a form POST
and answers a token-sized JSON body (640 bytes, the size of a client_credentials response), with
no framework, middleware, database or cryptography. Whatever the HTTP server costs per request
is all it measures; bench/ceiling.sh serves it the way `ostiary serve` serves Ostiary."""

from __future__ import annotations

from typing import Any

_BODY = b'{"access_token":"' + b"x" * 580 + b'","token_type":"Bearer","expires_in":300}'
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"content-length", str(len(_BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # the whole body, as a real endpoint reads it
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
