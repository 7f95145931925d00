"""The connect-time SSRF guard: one resolution, every answer checked, the connection made to a
checked address literal, and the connected peer checked again (OWASP SSRF cheat sheet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpcore
import pytest

from ostiary.protocol.destinations import DestinationPolicy, DestinationRefused
from ostiary.storage.guarded_network import GuardedNetworkBackend, resolve_with_getaddrinfo


class FakeStream(httpcore.AsyncNetworkStream):
    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    def get_extra_info(self, info: str) -> Any:
        return self.peer if info == "server_addr" else None


class FakeInner(httpcore.AsyncNetworkBackend):
    """Records where connections go; answers from ``peers`` (address literal -> peer)."""

    def __init__(self, peers: dict[str, Any], failing: Sequence[str] = ()) -> None:
        self.peers = peers
        self.failing = set(failing)
        self.connected: list[str] = []
        self.streams: list[FakeStream] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kw: Any) -> FakeStream:
        self.connected.append(host)
        if host in self.failing:
            raise httpcore.ConnectError("refused by the fake")
        stream = FakeStream(self.peers.get(host, (host, port)))
        self.streams.append(stream)
        return stream


class Answers:
    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        return self.addresses


async def test_connects_to_the_checked_address_not_the_name() -> None:
    answers = Answers("93.184.215.14")
    inner = FakeInner({})
    backend = GuardedNetworkBackend(DestinationPolicy(), resolver=answers, inner=inner)
    stream = await backend.connect_tcp("keys.example", 443, timeout=1)
    assert inner.connected == ["93.184.215.14"]
    assert answers.calls == [("keys.example", 443)]  # resolved once
    assert stream is inner.streams[0]


@pytest.mark.parametrize(
    "answer",
    [("127.0.0.1",), ("169.254.169.254",), ("10.0.0.7",), ("::1",), ("93.184.215.14", "10.0.0.7")],
)
async def test_a_name_with_any_internal_answer_is_refused_before_connecting(
    answer: tuple[str, ...],
) -> None:
    inner = FakeInner({})
    backend = GuardedNetworkBackend(DestinationPolicy(), resolver=Answers(*answer), inner=inner)
    with pytest.raises(DestinationRefused, match="resolves to a"):
        await backend.connect_tcp("rebind.example", 443)
    assert inner.connected == []


async def test_the_connected_peer_is_checked_again() -> None:
    # Whatever the resolver said, a socket whose peer is internal is closed unused.
    inner = FakeInner({"93.184.215.14": ("169.254.169.254", 443)})
    backend = GuardedNetworkBackend(
        DestinationPolicy(), resolver=Answers("93.184.215.14"), inner=inner
    )
    with pytest.raises(DestinationRefused, match="link-local"):
        await backend.connect_tcp("keys.example", 443)
    assert inner.streams[0].closed


async def test_an_unknown_peer_is_refused() -> None:
    inner = FakeInner({"93.184.215.14": None})
    backend = GuardedNetworkBackend(
        DestinationPolicy(), resolver=Answers("93.184.215.14"), inner=inner
    )
    with pytest.raises(DestinationRefused, match="unknown"):
        await backend.connect_tcp("keys.example", 443)
    assert inner.streams[0].closed


async def test_falls_back_to_the_next_checked_address() -> None:
    inner = FakeInner({}, failing=["2606:4700:4700::1111"])
    backend = GuardedNetworkBackend(
        DestinationPolicy(), resolver=Answers("2606:4700:4700::1111", "1.1.1.1"), inner=inner
    )
    await backend.connect_tcp("keys.example", 443)
    assert inner.connected == ["2606:4700:4700::1111", "1.1.1.1"]


async def test_no_answer_or_no_connection_is_a_connect_error() -> None:
    backend = GuardedNetworkBackend(DestinationPolicy(), resolver=Answers(), inner=FakeInner({}))
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("nothing.example", 443)
    failing = FakeInner({}, failing=["1.1.1.1"])
    backend = GuardedNetworkBackend(DestinationPolicy(), resolver=Answers("1.1.1.1"), inner=failing)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("keys.example", 443)


async def test_allow_private_lets_loopback_through() -> None:
    inner = FakeInner({})
    backend = GuardedNetworkBackend(
        DestinationPolicy(allow_private=True), resolver=Answers("127.0.0.1"), inner=inner
    )
    await backend.connect_tcp("localhost", 8080)
    assert inner.connected == ["127.0.0.1"]


async def test_unix_sockets_are_never_a_destination() -> None:
    backend = GuardedNetworkBackend(DestinationPolicy(allow_private=True))
    with pytest.raises(DestinationRefused):
        await backend.connect_unix_socket("/var/run/docker.sock")


async def test_the_system_resolver_answers_addresses() -> None:
    addresses = await resolve_with_getaddrinfo("localhost", 80)
    assert "127.0.0.1" in addresses or "::1" in addresses
