"""Fetching a client's ``jwks_uri`` (RFC 7591 section 2; a JWK Set, RFC 7517 section 5) with a
bounded, short-lived cache, guarded against server-side request forgery.

The URL is chosen by whoever registered the client, so the fetch follows the OWASP SSRF
Prevention Cheat Sheet: the URL is checked again before every fetch
(:func:`ostiary.protocol.destinations.check_fetch_url`: ``https``, no userinfo, no fragment);
the host is resolved once and the connection goes only to an allowed, globally reachable
address, checked again on the connected socket (:mod:`ostiary.storage.guarded_network`); no
redirect is followed (RFC 9110 section 15.4: any answer but 200 is a failure); no proxy from the
environment is used; the body is read in chunks and dropped as soon as it passes 64 KiB; the
whole fetch, resolution included, has one deadline. Refusals and failures are logged without the
URL's query string and remembered for a few seconds, so that token requests naming a client with
a broken ``jwks_uri`` cannot make the server fetch on every request.

A client that rotates its keys publishes the new one at its ``jwks_uri`` and signs with it at
once (OpenID Connect Core 1.0 section 10.1.1): a caller that meets a key id the cached set lacks
asks again with ``refresh=True``, and the set is downloaded again unless it was downloaded
less than ``refetch_interval`` seconds ago (so assertions with made-up key ids cannot make the
server fetch on every request). Concurrent requests for one URI share one download.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING, Any

import structlog

from ostiary.protocol.destinations import (
    DestinationPolicy,
    DestinationRefused,
    check_fetch_url,
    loggable_url,
)
from ostiary.protocol.jwt_parts import parse_json_object

if TYPE_CHECKING:
    import httpcore

    from ostiary.storage.guarded_network import Resolver

__all__ = ["HttpJwksFetcher"]

MAX_BYTES = 64 * 1024
log = structlog.get_logger("ostiary.jwks")


class _FetchFailed(Exception):
    """A fetch that went wrong in an ordinary way (network, status, size); logged by name."""


class HttpJwksFetcher:
    """Implements ``JwksFetcher``. The default policy allows public addresses only."""

    def __init__(
        self,
        policy: DestinationPolicy | None = None,
        *,
        ttl: float = 300.0,
        failure_ttl: float = 10.0,
        refetch_interval: float = 30.0,
        limit: int = 256,
        timeout: float = 5.0,
        max_bytes: int = MAX_BYTES,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy or DestinationPolicy()
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._limit = limit
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._refetch_interval = refetch_interval
        # uri -> (monotonic time the entry expires, when it was downloaded, the JWK Set or {}
        # after a failure)
        self._cache: dict[str, tuple[float, float, dict[str, Any]]] = {}
        self._downloads: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def fetch(self, uri: str, *, refresh: bool = False) -> dict[str, Any]:
        """The JWK Set at ``uri`` as a dict, or ``{}`` when it cannot (or must not) be had.

        ``refresh``: the caller met a key id the cached set lacks; download again unless the
        cached set is younger than ``refetch_interval``.
        """
        now = time.monotonic()
        cached = self._cache.get(uri)
        if cached is not None:
            expires, downloaded, data = cached
            fresh_enough = not refresh or now - downloaded < self._refetch_interval
            if now < expires and fresh_enough:
                return data
        download = self._downloads.get(uri)
        if download is None:
            download = asyncio.ensure_future(self._download_and_keep(uri))
            self._downloads[uri] = download
        # One waiter cancelled (its request timed out) must not cancel the others' download.
        return await asyncio.shield(download)

    async def _download_and_keep(self, uri: str) -> dict[str, Any]:
        try:
            data = await self._download(uri)
            now = time.monotonic()
            self._cache.pop(uri, None)
            if len(self._cache) >= self._limit:
                self._cache.pop(next(iter(self._cache)))
            self._cache[uri] = (now + (self._ttl if data else self._failure_ttl), now, data)
            return data
        finally:
            self._downloads.pop(uri, None)

    async def _download(self, uri: str) -> dict[str, Any]:
        url = loggable_url(uri)
        try:
            check_fetch_url(uri, self._policy)
            async with asyncio.timeout(self._timeout):
                body = await self._get(uri)
        except DestinationRefused as exc:
            log.warning("jwks_uri_refused", url=url, reason=exc.reason)
            return {}
        except _FetchFailed as exc:
            log.warning("jwks_uri_fetch_failed", url=url, error=str(exc))
            return {}
        except TimeoutError:
            log.warning("jwks_uri_fetch_failed", url=url, error="timeout")
            return {}
        try:
            # Limited: json.loads would answer deep nesting with RecursionError (a 500).
            return parse_json_object(body)
        except ValueError:
            log.warning("jwks_uri_fetch_failed", url=url, error="not_a_json_object")
            return {}

    async def _get(self, uri: str) -> bytes:
        """The body of a 200 answer to GET ``uri``; anything else raises _FetchFailed."""
        import httpcore  # here: a worker that never fetches does not load it

        from ostiary.storage.guarded_network import (
            GuardedNetworkBackend,
            resolve_with_getaddrinfo,
        )

        backend = GuardedNetworkBackend(
            self._policy, resolver=self._resolver or resolve_with_getaddrinfo
        )
        seconds = self._timeout
        try:
            async with (
                httpcore.AsyncConnectionPool(
                    ssl_context=self._ssl_context,
                    max_connections=1,
                    retries=0,
                    network_backend=backend,
                ) as pool,
                pool.stream(
                    "GET",
                    uri,
                    headers=[(b"Accept", b"application/json, application/jwk-set+json")],
                    extensions={"timeout": {"connect": seconds, "read": seconds, "write": seconds}},
                ) as response,
            ):
                if response.status != 200:
                    raise _FetchFailed(f"status_{response.status}")
                return await self._read_capped(response)
        except (
            OSError,
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.UnsupportedProtocol,
        ) as exc:
            raise _FetchFailed(type(exc).__name__) from exc

    async def _read_capped(self, response: httpcore.Response) -> bytes:
        declared = next((v for n, v in response.headers if n.lower() == b"content-length"), b"")
        if declared.strip().isdigit() and int(declared) > self._max_bytes:
            raise _FetchFailed("too_large")  # refused before a byte of the body is read
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_stream():
            size += len(chunk)
            if size > self._max_bytes:
                # Leaving the stream unread closes the connection: no more is downloaded.
                raise _FetchFailed("too_large")
            chunks.append(chunk)
        return b"".join(chunks)
