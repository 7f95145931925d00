"""Fetching a client's ``jwks_uri`` (RFC 7591 section 2) with a bounded, short-lived cache."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["HttpJwksFetcher"]

_MAX_BYTES = 64 * 1024


class HttpJwksFetcher:
    def __init__(self, ttl: float = 300.0, limit: int = 256) -> None:
        self._ttl = ttl
        self._limit = limit
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def fetch(self, uri: str) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._cache.get(uri)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        import httpx  # here: 3 MB a worker would carry for the few private_key_jwt clients

        try:
            async with httpx.AsyncClient(timeout=5, follow_redirects=False) as http:
                response = await http.get(uri, headers={"Accept": "application/json"})
            if response.status_code != 200 or len(response.content) > _MAX_BYTES:
                return {}
            data = response.json()
        except (httpx.HTTPError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        if len(self._cache) >= self._limit:
            self._cache.pop(next(iter(self._cache)))
        self._cache[uri] = (now, data)
        return data
