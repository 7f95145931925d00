"""Bounded JSON over HTTP: what the verifier reads from the authorization server.

Responses are read as a stream and cut off at :data:`MAX_BODY_BYTES`, so a misbehaving or
hostile endpoint cannot make a resource server buffer an unbounded body. Redirects are not
followed (RFC 8414 section 3.3 / OpenID Connect Discovery section 4.3 tie metadata to the exact
issuer URL).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = ["MAX_BODY_BYTES", "FetchError", "request_json"]

MAX_BODY_BYTES = 1 << 20


class FetchError(Exception):
    """The request failed, or its answer was not a JSON object with status 200."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


async def request_json(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON object answered by ``method url``; :class:`FetchError` otherwise."""
    all_headers = {"Accept": "application/json", **(headers or {})}
    try:
        async with http.stream(
            method, url, data=data, headers=all_headers, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise FetchError(
                    f"{method} {url} answered HTTP {response.status_code}",
                    status_code=response.status_code,
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise FetchError(f"{method} {url} answered more than {MAX_BODY_BYTES} bytes")
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise FetchError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
    try:
        document = json.loads(bytes(body))
    except ValueError as exc:
        raise FetchError(f"{method} {url} did not answer JSON") from exc
    if not isinstance(document, dict):
        raise FetchError(f"{method} {url} did not answer a JSON object")
    return document
