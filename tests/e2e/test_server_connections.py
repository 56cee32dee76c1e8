"""A browser's keep-alive connection to the proxy, used for one site after
another, holds a few idle connections to the sites, not one for every site
it has visited (``proxy/serverconns.py``), and every request is still
judged, served and recorded."""

from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxy_addon.proxy.serverconns import IDLE_KEPT

pytestmark = pytest.mark.e2e

SITES = 30


class Tally:
    """Connections open now, and the most open at once, across all the sites."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.peak = 0

    def opened(self) -> None:
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        with self.lock:
            self.open -= 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = f"site {self.server.server_address[1]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def counting_site(tally: Tally) -> ThreadingHTTPServer:
    class Site(ThreadingHTTPServer):
        daemon_threads = True

        def process_request(self, request, client_address) -> None:
            tally.opened()
            super().process_request(request, client_address)

        def shutdown_request(self, request) -> None:
            tally.closed()
            super().shutdown_request(request)

    server = Site(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_one_client_connection_holds_a_few_site_connections(config_dir, make_proxy):
    tally = Tally()
    sites = [counting_site(tally) for _ in range(SITES)]
    try:
        routes = {f"site{i}.example": s.server_address[1] for i, s in enumerate(sites)}
        proxy = make_proxy(config_dir, routes=routes)
        urls = [f"http://site{i}.example/page" for i in range(SITES)]
        # One curl, one keep-alive connection to the proxy, thirty sites one after another.
        out = subprocess.run(["curl", "-sS", "--max-time", "30", "-x", proxy.url, *urls],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f"site {s.server_address[1]}" for s in sites]
        # The idle ones kept, the one in use, and one being closed that its site has not noticed yet;
        # before serverconns, all thirty stayed open.
        assert tally.peak <= IDLE_KEPT + 2, f"{tally.peak} connections to the sites open at once"
        rows = proxy.wait_rows(SITES, "host LIKE 'site%.example'")
        assert sorted(r["host"] for r in rows) == sorted(routes)
        assert {r["action"] for r in rows} == {"allow"}
    finally:
        for s in sites:
            s.shutdown()
            s.server_close()
