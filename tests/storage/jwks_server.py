"""A real HTTP(S) server on 127.0.0.1, in a thread, that serves a client's JWK Set for tests.

Each path answers with a ``Reply``; every request is recorded (path, Host header), and for TLS
the server name the client sent (SNI) too, so tests can prove what reached the wire.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Sent in pieces of ``chunk`` bytes with ``delay`` seconds between them, without a
    # Content-Length (the body ends when the connection closes), when ``stream`` is set.
    stream: bool = False
    chunk: int = 16 * 1024
    delay: float = 0.0
    wait_before: float = 0.0

    @classmethod
    def json(cls, data: Any) -> Reply:
        return cls(body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})


@dataclass
class Seen:
    path: str
    host: str | None


class JwksServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[Seen] = []
        self.server_names: list[str | None] = []
        self.bytes_sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                outer.requests.append(Seen(self.path, self.headers.get("Host")))
                reply = outer.replies.get(path, Reply(status=404, body=b"not found"))
                time.sleep(reply.wait_before)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.stream:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                elif "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                step = reply.chunk if reply.stream else max(len(reply.body), 1)
                try:
                    for start in range(0, len(reply.body), step):
                        piece = reply.body[start : start + step]
                        self.wfile.write(piece)
                        self.wfile.flush()
                        outer.bytes_sent += len(piece)
                        time.sleep(reply.delay)
                except OSError:
                    self.close_connection = True  # the client hung up: what the tests expect

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        if tls is not None:

            def remember_sni(sock: Any, name: str | None, ctx: ssl.SSLContext) -> None:
                outer.server_names.append(name)

            tls.sni_callback = remember_sni
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass(frozen=True)
class TestPki:
    """A throwaway CA and a server certificate it signed for one host name."""

    __test__ = False  # not a pytest test class

    ca_pem: bytes
    server: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def make_pki(hostname: str, tmp_dir: Any) -> TestPki:
    now = datetime.now(UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, signer: Any) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
        )
        if issuer is None:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(hostname)]), False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", None, ca_key, ca_key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(hostname, ca.subject, leaf_key, ca_key)
    cert_file = tmp_dir / "server.pem"
    key_file = tmp_dir / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return TestPki(ca.public_bytes(serialization.Encoding.PEM), server)


class FetcherTime:
    """The monotonic clock of ``ostiary.storage.http_jwks`` (its cache and refetch interval),
    moved by the test instead of by sleeping: on a busy machine a real 0.3 s interval can
    pass between two calls that should fall within it."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def install(self, monkeypatch: Any) -> FetcherTime:
        """Replace the module's ``time`` (only there: asyncio keeps the real clock)."""
        import ostiary.storage.http_jwks

        monkeypatch.setattr(ostiary.storage.http_jwks, "time", self)
        return self
