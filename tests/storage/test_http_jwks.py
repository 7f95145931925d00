"""Fetching a client's jwks_uri (RFC 7591 section 2) against a real local HTTP(S) server, under
the SSRF rules of the OWASP cheat sheet: resolved addresses checked, no redirects, a size cap
enforced while reading, one deadline, failures remembered briefly, logs without query strings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ostiary.protocol.destinations import DestinationPolicy
from ostiary.storage.http_jwks import MAX_BYTES, HttpJwksFetcher
from tests.storage.jwks_server import FetcherTime, JwksServer, Reply, make_pki

JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "AAAA", "y": "BBBB"}]}
LOCAL = DestinationPolicy(allow_private=True, allow_http_loopback=True)


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with JwksServer() as srv:
        srv.replies["/jwks.json"] = Reply.json(JWKS)
        yield srv


class Resolver:
    """Answers names from a table (as a DNS server under someone else's control might)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        return self.table.get(host, [])


async def test_fetches_from_a_local_server_when_the_operator_allows_it(
    server: JwksServer,
) -> None:
    fetcher = HttpJwksFetcher(LOCAL)
    uri = f"http://127.0.0.1:{server.port}/jwks.json"
    assert await fetcher.fetch(uri) == JWKS
    assert await fetcher.fetch(uri) == JWKS  # from the cache
    assert [seen.path for seen in server.requests] == ["/jwks.json"]


@pytest.mark.parametrize(
    ("policy", "scheme"),
    [(DestinationPolicy(), "https"), (DestinationPolicy(allow_http_loopback=True), "http")],
)
async def test_a_hostname_resolving_to_loopback_is_refused_by_default(
    server: JwksServer, policy: DestinationPolicy, scheme: str
) -> None:
    # "localhost" resolves to 127.0.0.1 through the system resolver; nothing may connect there.
    uri = f"{scheme}://localhost:{server.port}/jwks.json?access_token=s3cret"
    with capture_logs() as logs:
        assert await HttpJwksFetcher(policy).fetch(uri) == {}
    assert server.requests == []
    refusal = next(e for e in logs if e["event"] == "jwks_uri_refused")
    assert "loopback" in refusal["reason"]
    assert refusal["url"] == f"{scheme}://localhost:{server.port}/jwks.json"
    assert "s3cret" not in repr(logs)


async def test_an_address_literal_is_refused_without_resolving(server: JwksServer) -> None:
    resolver = Resolver({})
    fetcher = HttpJwksFetcher(DestinationPolicy(allow_http_loopback=True), resolver=resolver)
    assert await fetcher.fetch(f"http://127.0.0.1:{server.port}/jwks.json") == {}
    assert resolver.calls == [] and server.requests == []


async def test_rebinding_answers_are_checked_on_the_one_resolution_used(
    server: JwksServer,
) -> None:
    # A name whose answers mix a public and an internal address is refused outright.
    resolver = Resolver({"keys.example": ["93.184.215.14", "127.0.0.1"]})
    fetcher = HttpJwksFetcher(resolver=resolver)
    assert await fetcher.fetch(f"https://keys.example:{server.port}/jwks.json") == {}
    assert resolver.calls == ["keys.example"] and server.requests == []


async def test_tls_to_the_resolved_address_keeps_the_host_name(tmp_path: Path) -> None:
    # Connected to 127.0.0.1, yet Host header, SNI and the certificate check use the name.
    pki = make_pki("jwks.test", tmp_path)
    resolver = Resolver({"jwks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with JwksServer(tls=pki.server) as tls_server:
        tls_server.replies["/jwks.json"] = Reply.json(JWKS)
        fetcher = HttpJwksFetcher(
            DestinationPolicy(allow_private=True),
            resolver=resolver,
            ssl_context=pki.client_context(),
        )
        uri = f"https://jwks.test:{tls_server.port}/jwks.json"
        assert await fetcher.fetch(uri) == JWKS
        assert tls_server.requests[0].host == f"jwks.test:{tls_server.port}"
        assert tls_server.server_names == ["jwks.test"]
        # The same address under a name the certificate does not carry: no keys.
        assert await fetcher.fetch(f"https://other.test:{tls_server.port}/jwks.json") == {}
        assert len(tls_server.requests) == 1


async def test_redirects_are_not_followed(server: JwksServer) -> None:
    server.replies["/moved"] = Reply(status=302, headers={"Location": "/jwks.json"})
    fetcher = HttpJwksFetcher(LOCAL)
    assert await fetcher.fetch(f"http://127.0.0.1:{server.port}/moved") == {}
    assert [seen.path for seen in server.requests] == ["/moved"]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, body=b"{}"),
        Reply(status=404),
        Reply(body=b"not json"),
        Reply(body=b"[1, 2]"),
        Reply(body=b"\xff\xfe"),
        Reply(body=b"[" * 40000),  # json.loads: RecursionError, a 500 at the token endpoint
        Reply(body=b'{"keys":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        Reply(body=b'{"keys":[],"x":NaN}'),
    ],
)
async def test_bad_answers_give_no_keys(server: JwksServer, reply: Reply) -> None:
    server.replies["/bad"] = reply
    assert await HttpJwksFetcher(LOCAL).fetch(f"http://127.0.0.1:{server.port}/bad") == {}


def _padded(size: int) -> bytes:
    head = json.dumps({**JWKS, "pad": ""}).encode()
    return head[:-2] + b" " * (size - len(head)) + head[-2:]


@pytest.mark.parametrize("stream", [False, True])
async def test_the_size_cap_is_64_kib(server: JwksServer, stream: bool) -> None:
    server.replies["/full"] = Reply(body=_padded(MAX_BYTES), stream=stream)
    server.replies["/over"] = Reply(body=_padded(MAX_BYTES + 1), stream=stream)
    fetcher = HttpJwksFetcher(LOCAL)
    assert (await fetcher.fetch(f"http://127.0.0.1:{server.port}/full"))["keys"] == JWKS["keys"]
    assert await fetcher.fetch(f"http://127.0.0.1:{server.port}/over") == {}


async def test_an_endless_body_is_cut_off_while_streaming(server: JwksServer) -> None:
    total = 256 * 1024 * 1024
    server.replies["/endless"] = Reply(body=b" " * total, stream=True, chunk=64 * 1024)
    started = time.monotonic()
    assert await HttpJwksFetcher(LOCAL).fetch(f"http://127.0.0.1:{server.port}/endless") == {}
    assert time.monotonic() - started < 4
    assert server.bytes_sent < total // 4  # the rest was never downloaded


async def test_a_declared_oversized_body_is_not_read(server: JwksServer) -> None:
    server.replies["/huge"] = Reply(body=b"{}", headers={"Content-Length": str(10**9)})
    started = time.monotonic()
    assert await HttpJwksFetcher(LOCAL).fetch(f"http://127.0.0.1:{server.port}/huge") == {}
    assert time.monotonic() - started < 2  # did not wait for a gigabyte that never comes


async def test_one_deadline_covers_a_slowly_dripping_body(server: JwksServer) -> None:
    # Each byte arrives well within a per-read timeout; the whole answer does not.
    server.replies["/drip"] = Reply(body=json.dumps(JWKS).encode(), stream=True, chunk=1, delay=0.2)
    fetcher = HttpJwksFetcher(LOCAL, timeout=1.0)
    started = time.monotonic()
    with capture_logs() as logs:
        assert await fetcher.fetch(f"http://127.0.0.1:{server.port}/drip") == {}
    assert time.monotonic() - started < 3
    assert any(e.get("error") == "timeout" for e in logs)


async def test_failures_are_remembered_briefly(server: JwksServer) -> None:
    resolver = Resolver({"keys.example": ["10.0.0.1"]})
    fetcher = HttpJwksFetcher(resolver=resolver, failure_ttl=60)
    for _ in range(3):
        assert await fetcher.fetch("https://keys.example/jwks.json") == {}
    assert resolver.calls == ["keys.example"]
    retry = HttpJwksFetcher(resolver=resolver, failure_ttl=0)
    for _ in range(2):
        assert await retry.fetch("https://keys.example/jwks.json") == {}
    assert len(resolver.calls) == 3


async def test_the_cache_is_bounded(server: JwksServer) -> None:
    fetcher = HttpJwksFetcher(LOCAL, limit=2)
    uris = [f"http://127.0.0.1:{server.port}/jwks.json?n={n}" for n in range(3)]
    for uri in uris:
        await fetcher.fetch(uri)
    await fetcher.fetch(uris[0])  # evicted: fetched again
    await fetcher.fetch(uris[2])  # still cached
    assert len(server.requests) == 4


@pytest.mark.parametrize(
    "uri",
    [
        "https://user:pw@keys.example/jwks.json",
        "https://keys.example/jwks.json#x",
        "ftp://keys.example/jwks.json",
        "http://keys.example/jwks.json",
    ],
)
async def test_unsafe_stored_urls_are_refused_at_fetch_time(uri: str) -> None:
    # Clients registered before the registration checks existed are checked again here.
    resolver = Resolver({"keys.example": ["93.184.215.14"]})
    with capture_logs() as logs:
        assert await HttpJwksFetcher(LOCAL, resolver=resolver).fetch(uri) == {}
    assert resolver.calls == []
    assert [e["event"] for e in logs] == ["jwks_uri_refused"]
    assert "pw" not in repr(logs)


async def test_a_refresh_downloads_again_once_per_refetch_interval(
    server: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FetcherTime().install(monkeypatch)
    fetcher = HttpJwksFetcher(LOCAL, refetch_interval=0.3)
    uri = f"http://127.0.0.1:{server.port}/jwks.json"
    assert await fetcher.fetch(uri) == JWKS
    rotated = {"keys": [{**JWKS["keys"][0], "kid": "k2"}]}
    server.replies["/jwks.json"] = Reply.json(rotated)
    assert await fetcher.fetch(uri, refresh=True) == JWKS  # downloaded just now: not again
    assert await fetcher.fetch(uri) == JWKS  # and the cache still serves the old set
    clock.advance(0.29)
    assert await fetcher.fetch(uri, refresh=True) == JWKS  # still within the interval
    clock.advance(0.02)
    assert await fetcher.fetch(uri, refresh=True) == rotated
    assert await fetcher.fetch(uri) == rotated  # the new set replaced the cached one
    assert len(server.requests) == 2


async def test_concurrent_fetches_of_one_uri_share_one_download(server: JwksServer) -> None:
    fetcher = HttpJwksFetcher(LOCAL)
    uri = f"http://127.0.0.1:{server.port}/jwks.json"
    results = await asyncio.gather(*(fetcher.fetch(uri) for _ in range(10)))
    assert results == [JWKS] * 10
    assert len(server.requests) == 1
