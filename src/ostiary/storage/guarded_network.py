"""An httpcore network backend that connects only to addresses a DestinationPolicy allows.

Defence against server-side request forgery at the socket (OWASP SSRF Prevention Cheat Sheet,
"DNS pinning" / rebinding): the host name is resolved once, every address it resolves to is
checked (:func:`ostiary.protocol.destinations.address_refusal`), the connection goes to a
checked address literal (so nothing resolves the name a second time), and the peer address of
the socket actually connected is checked again before a byte is sent. The URL is left as it is,
so the ``Host`` header and the TLS server name (SNI, and the certificate's name check, RFC 6125)
stay the original host name.

Imported only by a fetch (httpcore is not loaded by workers that never make one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore

from ostiary.protocol.destinations import DestinationPolicy, DestinationRefused, IPAddress

__all__ = ["GuardedNetworkBackend", "Resolver", "resolve_with_getaddrinfo"]

# host, port -> the addresses to connect to, in order of preference.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def resolve_with_getaddrinfo(host: str, port: int) -> Sequence[str]:
    """The system resolver (getaddrinfo, in the event loop's thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse(address: str) -> IPAddress:
    # A scope id ("fe80::1%eth0") says which interface, not which address.
    return ipaddress.ip_address(address.split("%", 1)[0])


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver = resolve_with_getaddrinfo,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    def _check(self, address: str) -> IPAddress:
        try:
            parsed = _parse(address)
        except ValueError:
            raise DestinationRefused("resolver returned something that is not an address") from None
        refused = self._policy.refusal(parsed)
        if refused is not None:
            raise DestinationRefused(f"host resolves to a {refused} address ({parsed})")
        return parsed

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve host: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError("host has no address")
        # One refused answer refuses the host: a name that mixes public and internal
        # addresses is how rebinding attacks are set up (OWASP SSRF cheat sheet).
        checked = [self._check(address) for address in addresses]
        last_error: Exception | None = None
        for address in checked:
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            await self._check_peer(stream)
            return stream
        raise last_error or httpcore.ConnectError("no address to connect to")

    async def _check_peer(self, stream: httpcore.AsyncNetworkStream) -> None:
        peer = stream.get_extra_info("server_addr")
        try:
            if not isinstance(peer, tuple) or not peer:
                raise DestinationRefused("the connected peer's address is unknown")
            self._check(str(peer[0]))
        except DestinationRefused:
            await stream.aclose()
            raise

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix sockets are never a fetch destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
