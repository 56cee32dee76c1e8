"""Local origin servers for end-to-end tests: plain HTTP and TLS on 127.0.0.1.

They record every request they receive (method, path, headers, body) so a
test can check that an allowed request arrived unchanged, and that a blocked
one never arrived at all.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Seen:
    method: str
    path: str
    headers: Any  # http.client.HTTPMessage: case-insensitive, as HTTP headers are
    body: bytes
    host: str


@dataclass
class Origin:
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    routes: dict = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(origin: Origin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            origin.seen.append(Seen(self.command, self.path, self.headers, body,  # case-insensitive
                                    self.headers.get("Host", "")))
            route = origin.routes.get(self.path.split("?")[0])
            if callable(route):
                return route(self, body)
            payload = route if isinstance(route, bytes) else (
                b"hello from origin " + self.command.encode() + b" " + self.path.encode() + b"\n" + body)
            self.send_response(200)
            html = payload.lstrip()[:15].lower() == b"<!doctype html>"
            self.send_header("Content-Type", "text/html; charset=utf-8" if html else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Origin", "local")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

    return Handler


def start_origin(tls_context: ssl.SSLContext | None = None) -> Origin:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    origin = Origin(server)
    server.RequestHandlerClass = _handler(origin)
    server.daemon_threads = True
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return origin


def make_cert(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` (and 127.0.0.1): (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "origin-cert.pem", directory / "origin-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def start_tls_origin(directory: Path, names: list[str]) -> tuple[Origin, Path]:
    cert, key = make_cert(directory, names)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return start_origin(ctx), cert
