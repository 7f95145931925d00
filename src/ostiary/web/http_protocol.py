"""uvicorn's httptools protocol with each response's head and body sent in one write.

uvicorn writes an HTTP/1.1 response (RFC 9112, section 2.1: status line, header fields, blank
line, then the content) with one ``transport.write`` for the head, at ``http.response.start``,
and one for each body message, so every response costs at least two ``send`` system calls and
two TCP segments on the wire (measured with ``strace -c``: 9,806 writes for 4,905 requests).
On a virtual machine a system call is a large part of a fast request (the write was 15 % of an
API-key verification's time and more of a decision's, bench/RESULTS.md), so
:class:`CoalescingHttpProtocol` hands uvicorn a transport that holds back a written head and
sends it together with the write that follows (the body, in the same task step: an ASGI app
sends both without waiting in between). A held head never waits longer than the current turn
of the event loop: a callback scheduled with it flushes it when nothing followed (a streamed
response whose first chunk is not ready yet, ``100 Continue``, the end of a chunked body).
What reaches the client, and in what order, is unchanged; ``close()`` and ``write_eof()``
send a held head first, ``abort()`` drops it with everything else unsent, as it always did.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpProtocol", "CoalescingTransport"]

_END_OF_HEAD = b"\r\n\r\n"


class CoalescingTransport:
    """Wraps a transport: a write that ends a message head (CRLF CRLF) is held until the next
    write or the end of this turn of the event loop, then both go out in one system call.
    Everything else is the wrapped transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            # One writev of both: the body is not copied.
            self._transport.writelines((held, data))
            return
        if data[-4:] == _END_OF_HEAD and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        self.flush()
        self._transport.writelines(chunks)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held else 0)

    def __getattr__(self, name: str) -> Any:
        # is_closing, get_extra_info, pause_reading, resume_reading, set_protocol, ...
        return getattr(self._transport, name)


class CoalescingHttpProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=CoalescingHttpProtocol)``: httptools parsing, one write per
    response (see the module doc)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        wrapped: Any = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(wrapped)
