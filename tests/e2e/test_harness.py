"""The e2e harness itself: a server is ready only when it is ours.

``free_port()`` finds a port that is free *now*; another pytest worker's server can take it
before ``ostiary dev`` binds it. Our process then fails to bind and exits, while the other
server answers ``/readyz`` with 200, and the tests would talk to the wrong server until ours
is found dead. Here an impostor that looks like Ostiary (``/readyz`` 200, the same issuer)
holds the first port the harness picks.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e import harness

pytestmark = pytest.mark.e2e


class _Impostor(BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        host, port = self.server.server_address[:2]
        body = json.dumps({"status": "ready", "issuer": f"http://{host}:{port}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_listens_on_tells_which_process_holds_a_port(impostor: int) -> None:
    if harness.listens_on(os.getpid(), impostor) is None:
        pytest.skip("needs Linux /proc")
    assert harness.listens_on(os.getpid(), impostor) is True
    assert harness.listens_on(os.getppid(), impostor) is False
    assert harness.listens_on(os.getpid(), harness.free_port()) is False


def test_a_server_answering_on_the_port_we_picked_is_not_taken_for_ours(
    impostor: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if harness.listens_on(os.getpid(), impostor) is None:
        pytest.skip("needs Linux /proc")
    picks = iter([impostor])
    real_free_port = harness.free_port
    monkeypatch.setattr(harness, "free_port", lambda: next(picks, None) or real_free_port())
    _Impostor.paths = []
    with harness.running_server("sqlite", tmp_path) as server:
        assert "/readyz" in _Impostor.paths  # the race happened: the impostor answered
        assert server.port != impostor
        assert server.process.poll() is None
        assert harness.listens_on(server.pid, server.port) is True
        with server.client() as client:
            discovery = client.get("/.well-known/openid-configuration").json()
        assert discovery["issuer"] == server.base_url
