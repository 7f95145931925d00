"""web/http_protocol.py: a response's head and body leave in one write, and nothing else about
HTTP/1.1 changes (RFC 9112): streamed bodies, HEAD, 204, ``Expect: 100-continue``, pipelined
and keep-alive requests, read by httpx and by a raw socket against a real uvicorn server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from ostiary.web.http_protocol import CoalescingHttpProtocol, CoalescingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport:
    """What reached the socket, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        self.writes.append(b"".join(bytes(c) for c in chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _wrapped() -> tuple[CoalescingTransport, RecordingTransport, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    inner = RecordingTransport()
    return CoalescingTransport(inner, loop), inner, loop  # type: ignore[arg-type]


def _turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_head_and_body_leave_in_one_write() -> None:
    wrapped, inner, loop = _wrapped()
    try:
        wrapped.write(HEAD)
        assert inner.writes == []
        wrapped.write(b"ok")
        assert inner.writes == [HEAD + b"ok"]
        _turn(loop)  # the scheduled flush finds nothing held
        assert inner.writes == [HEAD + b"ok"]
    finally:
        loop.close()


def test_a_held_head_is_sent_by_the_end_of_the_loop_turn() -> None:
    wrapped, inner, loop = _wrapped()
    try:
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert wrapped.get_write_buffer_size() == len(b"HTTP/1.1 100 Continue\r\n\r\n")
        _turn(loop)
        assert inner.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        assert wrapped.get_write_buffer_size() == 0
    finally:
        loop.close()


def test_other_writes_pass_through_and_order_is_kept() -> None:
    wrapped, inner, loop = _wrapped()
    try:
        wrapped.write(b"5\r\nhello\r\n")  # a chunk: not a head, not held
        assert inner.writes == [b"5\r\nhello\r\n"]
        wrapped.write(HEAD)
        wrapped.writelines([b"a", b"b"])
        assert inner.writes == [b"5\r\nhello\r\n", HEAD, b"ab"]
    finally:
        loop.close()


def test_close_and_eof_send_a_held_head_first_abort_drops_it() -> None:
    wrapped, inner, loop = _wrapped()
    try:
        wrapped.write(HEAD)
        wrapped.close()
        assert inner.writes == [HEAD] and inner.closed
        wrapped2, inner2, _ = _wrapped()
        wrapped2.write(HEAD)
        wrapped2.write_eof()
        assert inner2.writes == [HEAD, b"<eof>"]
        wrapped3, inner3, _ = _wrapped()
        wrapped3.write(HEAD)
        wrapped3.abort()
        _turn(loop)
        assert inner3.writes == [] and inner3.aborted
        # Everything else is the wrapped transport's.
        assert wrapped.get_extra_info("peername") == "info:peername"
    finally:
        loop.close()


def test_nothing_is_held_once_the_transport_is_closing() -> None:
    wrapped, inner, loop = _wrapped()
    try:
        inner.closed = True
        wrapped.write(HEAD)
        assert inner.writes == [HEAD]
    finally:
        loop.close()


# A real server: uvicorn with the protocol, as `ostiary serve` runs it.

RELEASE = threading.Event()


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/stream":  # the head must reach the client before the first chunk exists
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.to_thread(RELEASE.wait, 10)  # set by the test, from another thread
        for part in (b"one,", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b"echo:" + body
    headers = [(b"content-length", str(len(answer)).encode()), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app, http=CoalescingHttpProtocol, loop="uvloop", lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_responses_over_keep_alive(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        for i in range(20):
            response = client.post("/echo", content=f"n{i}".encode())
            assert response.status_code == 200
            assert response.text == f"echo:n{i}"
        assert client.head("/echo").status_code == 200
        empty = client.get("/empty")
        assert empty.status_code == 204 and empty.content == b""


def test_expect_100_continue_and_pipelining_on_a_raw_socket(base_url: str) -> None:
    host, port = httpx.URL(base_url).host, httpx.URL(base_url).port
    assert port is not None
    with socket.create_connection((host, port), timeout=5) as raw:
        reader = _Reader(raw)
        raw.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        # The interim answer is written alone: nothing follows it until the body is sent.
        assert reader.head() == b"HTTP/1.1 100 Continue"
        raw.sendall(b"abc")
        head, body = reader.response()
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"echo:abc"
        # Two requests in one segment: two whole responses, in order.
        raw.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nB"
        )
        assert reader.response()[1] == b"echo:A"
        assert reader.response()[1] == b"echo:B"
        assert reader.buffer == b""


def test_a_streamed_head_arrives_before_its_first_chunk(base_url: str) -> None:
    RELEASE.clear()
    with (
        httpx.Client(base_url=base_url, timeout=2) as client,
        client.stream("GET", "/stream") as response,
    ):
        # The head is here (within 2 s) while the app still waits (10 s) to produce the body.
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert not RELEASE.is_set()
        RELEASE.set()
        assert response.read() == b"one,two"


class _Reader:
    """HTTP/1.1 responses with a content-length, read off a socket one at a time."""

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.buffer = b""

    def _fill(self) -> None:
        data = self.raw.recv(4096)
        assert data, "the server closed the connection"
        self.buffer += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def response(self) -> tuple[bytes, bytes]:
        head = self.head()
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, body
