"""Requests crafted to slip past the filter, through a real proxy with raw
sockets (ordinary clients will not send them): each is refused and recorded,
never allowed under another name."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

pytestmark = pytest.mark.e2e


def raw(proxy_port: int, data: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and (b"Content-Length: 0" in out or out.count(b"\r\n\r\n") and len(out) > 40):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def test_two_host_headers_are_refused_and_recorded(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "www.bet365.com": origin.port})
    r = raw(proxy.port, b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nHost: www.bet365.com\r\n"
                        b"Connection: close\r\n\r\n")
    assert status(r) == 400, r[:200]
    rows = proxy.wait_rows(1)
    assert [(x["action"], x["rule"]) for x in rows] == [("block", "malformed")]
    assert "two Host headers" in rows[0]["reason"]
    assert origin.seen == []  # nothing reached the origin


@pytest.mark.parametrize("host", [b"www.bet365.com\x00.allowed.test", b"www.bet365.com%00", b"www.bet365.com%00.x"])
def test_a_nul_in_the_host_is_refused_not_judged_as_the_name_before_it(config_dir, make_proxy, origin, host):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "www.bet365.com": origin.port})
    r = raw(proxy.port, b"GET http://allowed.test/ HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert status(r) in (400, 403), r[:200]
    rows = proxy.wait_rows(1)
    assert rows and all(x["action"] == "block" for x in rows), [dict(x) for x in rows]
    assert origin.seen == []


def test_a_host_the_ip_parser_rejects_is_refused_and_recorded(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    r = raw(proxy.port, b"GET http://allowed.test/ HTTP/1.1\r\nHost: -9.1\r\nConnection: close\r\n\r\n")
    assert status(r) == 400, r[:200]
    rows = proxy.wait_rows(1)
    assert [(x["action"], x["rule"]) for x in rows] == [("block", "malformed")]


@pytest.mark.parametrize("path", ["/DNS-QUERY?dns=AAAB", "/dns-query/?dns=AAAB", "/dns-query;x?dns=AAAB",
                                  "/Resolve?name=example.com"])
def test_doh_paths_in_any_case_and_with_a_suffix_are_blocked(config_dir, make_proxy, origin, path):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    r = raw(proxy.port, f"GET http://allowed.test{path} HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
            .encode())
    assert status(r) == 403, r[:200]
    rows = proxy.wait_rows(1)
    assert rows[0]["rule"] == "circumvention:doh"


def test_an_sni_that_is_not_a_host_name_is_refused_not_passed_through(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
        head = s.recv(4096)
        assert status(head) == 200, head
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(s, server_hostname="-9.1") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
                assert tls.recv(100) == b""  # a closed connection counts as refused too
                raise ConnectionError("closed")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [x for x in proxy.rows() if x["method"] == "TLS"]
        if rows:
            break
        time.sleep(0.1)
    assert [(x["action"], x["tls"], x["rule"]) for x in rows] == [("block", "refused", "error")]
    assert "-9.1" in rows[0]["reason"]


def closed_within(s: socket.socket, seconds: float) -> bool:
    """True if the peer closes the connection within ``seconds``."""
    s.settimeout(seconds)
    try:
        while True:
            if s.recv(4096) == b"":
                return True
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_a_client_trickling_its_headers_is_closed(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port},
                       extra=["--set", "schoolproxy_header_timeout_s=1"])
    slow = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    slow.sendall(b"GET http://allowed.test/ HTTP/1.1\r\nHo")  # and nothing more
    prompt = raw(proxy.port, b"GET http://allowed.test/ok HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
    assert status(prompt) == 200
    t = time.monotonic()
    assert closed_within(slow, 6), "a client that never finishes its headers must not hold a connection"
    assert time.monotonic() - t < 6
    slow.close()


def test_one_address_cannot_hold_more_than_its_share_of_connections(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port},
                       extra=["--set", "schoolproxy_max_connections_per_client=5"])
    time.sleep(1)  # the start-up probe's connection must have been let go first
    held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(8)]
    try:
        time.sleep(0.5)
        refused = [s for s in held if closed_within(s, 0.5)]
        assert len(refused) == 3, len(refused)
        for s in held:
            if s not in refused:
                s.sendall(b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
                assert status(s.recv(4096)) == 200
    finally:
        for s in held:
            s.close()
    time.sleep(0.5)  # the closed ones no longer count
    assert status(raw(proxy.port, b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"
                                  b"Connection: close\r\n\r\n")) == 200


@pytest.mark.parametrize("request_line", [
    b"GET http://www.bet365.com\x00.allowed.test/ HTTP/1.1",   # a NUL in the absolute URL's host
    b"GET http://www.bet%33365.com/ HTTP/1.1",                # a % in it
    b"GET http://someone@www.bet365.com/ HTTP/1.1",           # user@ in it
])
def test_a_request_mitmproxy_cannot_parse_leaves_a_row(config_dir, make_proxy, origin, request_line):
    """mitmproxy answers these 400 before any hook runs; the refusal is still recorded."""
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "www.bet365.com": origin.port})
    r = raw(proxy.port, request_line + b"\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
    assert status(r) == 400, r[:200]
    rows = proxy.wait_rows(1)
    assert [(x["action"], x["rule"], x["status_code"]) for x in rows] == [("block", "malformed", 400)]
    assert "refused before it could be read" in rows[0]["reason"] and "\x00" not in rows[0]["reason"]
    assert origin.seen == []


def test_a_smuggling_attempt_is_recorded_as_refused_with_its_status(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    r = raw(proxy.port, b"POST http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
                        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
    assert status(r) == 400, r[:200]
    rows = proxy.wait_rows(1)
    assert [(x["action"], x["rule"], x["status_code"]) for x in rows] == [("block", "malformed", 400)]
    assert "smuggling" in rows[0]["reason"] and origin.seen == []


def test_a_nul_in_the_path_is_logged_escaped_not_cut(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    raw(proxy.port, b"GET http://allowed.test/a\x00b?q=\x01 HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
    rows = proxy.wait_rows(1)
    assert rows and rows[0]["url"] == "http://allowed.test/a%00b?q=%01", rows[0]["url"]


def test_two_host_headers_on_an_origin_form_request_leave_a_row(config_dir, make_proxy, origin):
    """mitmproxy answers this 400 with no hook and no log line: the connection's bytes give it away."""
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "www.bet365.com": origin.port})
    r = raw(proxy.port, b"GET /path HTTP/1.1\r\nHost: allowed.test\r\nHost: www.bet365.com\r\n"
                        b"Connection: close\r\n\r\n")
    assert status(r) == 400, r[:200]
    rows = proxy.wait_rows(1)
    assert [(x["action"], x["rule"]) for x in rows] == [("block", "malformed")]
    assert "never became a request" in rows[0]["reason"] and origin.seen == []
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
        pass  # a connection that sends nothing is no refusal
    raw(proxy.port, b"GET http://allowed.test/ok HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
    assert [x["rule"] for x in proxy.wait_rows(2)] == ["malformed", "default"]
