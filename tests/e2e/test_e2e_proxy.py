"""End to end: a real ``schoolproxy run`` process, real clients (curl, httpx),
local origin servers on 127.0.0.1, and the audit rows it writes."""

from __future__ import annotations

import concurrent.futures
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.origin import start_tls_origin
from tests.support.proxy import set_tls_mode, wait_for

pytestmark = pytest.mark.e2e

PROHIBITED = [
    ("http://www.bet365.com/sports?x=<b>1</b>", "gambling", "Gambling and betting", "gambling/betting/gaming"),
    ("http://pornhub.com/", "adult", "Pornography, adult and mature content", "pornography/Adult /mature content"),
    ("http://shop.gunbroker.com/item/1", "weapons", "Weapons", "weapons"),
]


def curl(proxy_url: str, url: str, *extra: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-x", proxy_url, "-o", "-", "-w", "\n%{http_code}", *extra, url],
        capture_output=True, text=True, timeout=timeout)


def test_prohibited_sites_get_the_block_page_over_http(config_dir, make_proxy, origin):
    hosts = {"www.bet365.com": origin.port, "pornhub.com": origin.port, "shop.gunbroker.com": origin.port}
    proxy = make_proxy(config_dir, routes=hosts)
    for url, category, title, words in PROHIBITED:
        r = curl(proxy.url, url)
        body, _, code = r.stdout.rpartition("\n")
        assert code == "403", (url, r.stdout, r.stderr)
        assert title in body and "6.3.1" in body and words in body
        assert "What to do next" in body
        assert "<b>1</b>" not in body  # the URL is reflected escaped
    assert "&lt;b&gt;1&lt;/b&gt;" in curl(proxy.url, PROHIBITED[0][0]).stdout
    assert origin.seen == [], "a blocked request must never reach the origin"
    rows = proxy.wait_rows(4)
    assert [(r["host"], r["category"], r["action"], r["status_code"], r["clause"]) for r in rows] == [
        ("www.bet365.com", "gambling", "block", 403, "6.3.1"),
        ("pornhub.com", "adult", "block", 403, "6.3.1"),
        ("shop.gunbroker.com", "weapons", "block", 403, "6.3.1"),
        ("www.bet365.com", "gambling", "block", 403, "6.3.1"),
    ]
    assert rows[0]["user"] == "127.0.0.1" and rows[0]["client_ip"] == "127.0.0.1"
    assert rows[0]["matched"].startswith("bet365.com (")
    assert rows[0]["rule"] == "category:gambling"


def test_prohibited_sites_are_refused_over_https_connect(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"www.bet365.com": origin.port, "pornhub.com": origin.port,
                                           "gunbroker.com": origin.port})
    for host in ("www.bet365.com", "pornhub.com", "gunbroker.com"):
        r = curl(proxy.url, f"https://{host}/")
        assert r.returncode != 0 and "403" in r.stderr, r.stderr
    with httpx.Client(proxy=proxy.url, verify=False) as client:
        with pytest.raises(httpx.ProxyError) as err:
            client.get("https://www.bet365.com/")
        assert "403" in str(err.value)
    rows = proxy.wait_rows(4)
    assert [(r["method"], r["host"], r["category"], r["action"], r["status_code"]) for r in rows] == [
        ("CONNECT", "www.bet365.com", "gambling", "block", 403),
        ("CONNECT", "pornhub.com", "adult", "block", 403),
        ("CONNECT", "gunbroker.com", "weapons", "block", 403),
        ("CONNECT", "www.bet365.com", "gambling", "block", 403),
    ]
    assert origin.seen == []


def test_allowed_request_reaches_the_origin_unchanged(config_dir, make_proxy, origin):
    origin.routes["/data"] = b"\x00binary\xffpayload" * 100
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    body = b'{"lesson": "fractions", "bytes": "\xe2\x82\xac"}'
    with httpx.Client(proxy=proxy.url) as client:
        r = client.post("http://allowed.test/submit/form?q=1&r=two", content=body,
                        headers={"X-Custom": "kept", "Content-Type": "application/json"})
        assert r.status_code == 200
        assert r.content == b"hello from origin POST /submit/form?q=1&r=two\n" + body
        assert r.headers["X-Origin"] == "local"
        data = client.get("http://allowed.test/data")
        assert data.content == b"\x00binary\xffpayload" * 100
    seen = origin.seen[0]
    assert (seen.method, seen.path, seen.body) == ("POST", "/submit/form?q=1&r=two", body)
    assert seen.headers["X-Custom"] == "kept" and seen.host == "allowed.test"
    assert not any(h.lower().startswith("proxy-") for h in seen.headers)
    rows = proxy.wait_rows(2)
    assert [(r["method"], r["url"], r["action"], r["category"], r["status_code"]) for r in rows] == [
        ("POST", "http://allowed.test/submit/form?q=1&r=two", "allow", None, 200),
        ("GET", "http://allowed.test/data", "allow", None, 200),
    ]
    assert rows[0]["bytes_in"] == len(body)
    assert rows[1]["bytes_out"] == len(b"\x00binary\xffpayload" * 100)


def test_curl_through_the_proxy_to_a_local_origin(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir)
    r = curl(proxy.url, f"http://127.0.0.1:{origin.port}/plain")
    assert r.stdout == "hello from origin GET /plain\n\n200"
    row = proxy.wait_rows(1)[0]
    assert (row["host"], row["action"], row["status_code"]) == ("127.0.0.1", "allow", 200)


def test_allowed_https_passes_through_undecrypted(config_dir, make_proxy, tmp_path):
    tls_origin, cert = start_tls_origin(tmp_path, ["allowed.test"])
    try:
        proxy = make_proxy(config_dir, routes={"allowed.test": tls_origin.port})
        # The client trusts only the origin's own certificate: success proves no interception.
        r = curl(proxy.url, "https://allowed.test/secure", "--cacert", str(cert))
        assert r.stdout.endswith("\n200") and "hello from origin GET /secure" in r.stdout, r.stderr
        rows = proxy.wait_rows(2)
        # On the record when it opens; its end (a "tunnel" row naming it) when it closes, with its bytes.
        assert [(x["method"], x["host"], x["action"], x["tls"], x["status_code"]) for x in rows] == [
            ("CONNECT", "allowed.test", "allow", "passthrough", 200),
            ("CONNECT", "allowed.test", "tunnel", "passthrough", 200)]
        opened, ended = rows
        assert ended["related_uid"] == opened["event_uid"] and opened["bytes_out"] is None
        assert ended["bytes_out"] > len("hello from origin GET /secure") and ended["bytes_in"] > 100  # TLS both ways
        assert "closed after" in ended["reason"]
    finally:
        tls_origin.close()


def test_intercept_mode_serves_the_block_page_inside_tls(config_dir, make_proxy, tmp_path):
    set_tls_mode(config_dir, "intercept")
    tls_origin, _ = start_tls_origin(tmp_path, ["allowed.test", "www.hsbc.co.uk"])
    try:
        proxy = make_proxy(config_dir, routes={"allowed.test": tls_origin.port, "www.bet365.com": tls_origin.port,
                                               "www.hsbc.co.uk": tls_origin.port})
        ca = str(proxy.ca_cert)
        blocked = curl(proxy.url, "https://www.bet365.com/casino", "--cacert", ca)
        assert blocked.stdout.endswith("\n403") and "Gambling and betting" in blocked.stdout, blocked.stderr
        allowed = curl(proxy.url, "https://allowed.test/inner?x=1", "--cacert", ca)
        assert allowed.stdout.endswith("\n200") and "GET /inner?x=1" in allowed.stdout, allowed.stderr
        # Banking is never decrypted: only the origin's own certificate works.
        origin_cert = str(tmp_path / "origin-cert.pem")
        bank = curl(proxy.url, "https://www.hsbc.co.uk/login", "--cacert", origin_cert)
        assert bank.stdout.endswith("\n200"), bank.stderr
        rows = proxy.wait_rows(4)
        got = {(r["host"], r["method"], r["action"], r["category"], r["tls"], r["status_code"]) for r in rows}
        assert got == {
            ("www.bet365.com", "GET", "block", "gambling", "intercept", 403),
            ("allowed.test", "GET", "allow", None, "intercept", 200),
            ("www.hsbc.co.uk", "CONNECT", "allow", "banking", "passthrough", 200),
            ("www.hsbc.co.uk", "CONNECT", "tunnel", "banking", "passthrough", 200),  # its end, with its bytes
        }
        assert [s.path for s in tls_origin.seen] == ["/inner?x=1", "/login"]
    finally:
        tls_origin.close()


def test_user_comes_from_proxy_auth_and_the_password_is_never_stored(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, proxyauth="alice:s3cret-pw", routes={"allowed.test": origin.port})
    denied = curl(proxy.url, "http://allowed.test/")
    assert denied.stdout.endswith("\n407")
    ok = curl(proxy.url, "http://allowed.test/", "--proxy-user", "alice:s3cret-pw")
    assert ok.stdout.endswith("\n200")
    blocked = curl(proxy.url, "http://bet365.com/", "--proxy-user", "alice:s3cret-pw")
    assert blocked.stdout.endswith("\n403") and "alice" in blocked.stdout
    rows = proxy.wait_rows(2)
    assert [(r["user"], r["action"]) for r in rows] == [("alice", "allow"), ("alice", "block")]
    proxy.stop()
    assert b"s3cret-pw" not in proxy.db_path.read_bytes()
    assert "s3cret-pw" not in proxy.output()


def test_devices_table_names_a_shared_pc(config_dir, make_proxy, origin):
    people = config_dir / "rules" / "10-people.yaml"
    people.write_text(people.read_text().replace("devices: []", "devices:\n  - ip: 127.0.0.1\n    user: staffroom-pc"))
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    assert curl(proxy.url, "http://allowed.test/").stdout.endswith("\n200")
    assert proxy.wait_rows(1)[0]["user"] == "staffroom-pc"


def test_ip_literals_in_every_form_are_matched(config_dir, make_proxy, origin):
    with open(config_dir / "lists" / "school" / "weapons.txt", "a") as fh:
        fh.write("127.0.0.2\n")
    proxy = make_proxy(config_dir)
    for form in ("127.0.0.2", "2130706434", "0x7f000002", "0177.0.0.02", "127.2", "[::ffff:127.0.0.2]"):
        r = curl(proxy.url, f"http://{form}/")
        assert r.stdout.endswith("\n403") and "Weapons" in r.stdout, (form, r.stdout[-200:], r.stderr)
    rows = proxy.wait_rows(6)
    assert {(r["host"], r["category"], r["action"]) for r in rows} == {("127.0.0.2", "weapons", "block")}


def test_sigterm_flushes_every_queued_event(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "bet365.com": origin.port})
    urls = [f"http://allowed.test/n/{i}" if i % 3 else f"http://bet365.com/n/{i}" for i in range(300)]

    def fetch(url: str) -> int:
        with httpx.Client(proxy=proxy.url, timeout=20) as c:
            return c.get(url).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(fetch, urls))
    assert codes.count(403) == 100 and codes.count(200) == 200
    assert proxy.stop(timeout=30) is not None  # SIGTERM straight after the last response
    rows = proxy.rows()
    assert len(rows) == 300
    assert sorted(r["url"] for r in rows) == sorted(urls)
    assert sum(r["action"] == "block" for r in rows) == 100


def test_a_broken_rules_file_is_reported_and_the_running_rules_stay(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port, "bet365.com": origin.port})
    assert curl(proxy.url, "http://allowed.test/").stdout.endswith("\n200")
    bad = config_dir / "rules" / "40-broken.yaml"
    bad.write_text("overrides:\n  - id: block-allowed\n    action: block\n    reason: test\n    domains: [allowed.test]\n"
                   "    colour: blue\n")
    check = subprocess.run([str(Path(proxy.proc.args[0])), "check", "--config", str(config_dir)],
                           capture_output=True, text=True)
    assert check.returncode == 1
    assert check.stdout.strip().splitlines() == [f"{bad}:6: unknown key 'colour' in an override "
                                                 "(expected one of: action, category, domains, essential, groups, "
                                                 "id, lists, reason, regex, urls, users, when)"]
    # `status` says so (issue 31: it said all was well), once the proxy has looked at the files
    status = [str(Path(proxy.proc.args[0])), "status", "--data-dir", str(proxy.workdir / "data")]
    said = lambda: subprocess.run(status, capture_output=True, text=True).stdout  # noqa: E731
    assert wait_for(lambda: "the rules on disk are broken" in said(), timeout=30), said()
    out = said()
    assert "40-broken.yaml:6: unknown key 'colour'" in out and "the ones in force are from" in out
    assert curl(proxy.url, "http://allowed.test/").stdout.endswith("\n200"), "broken rules must not apply"
    assert curl(proxy.url, "http://bet365.com/").stdout.endswith("\n403"), "rules in force must stay"
    assert "has problems" in proxy.output()
    bad.write_text("overrides:\n  - id: block-allowed\n    action: block\n    reason: test\n    domains: [allowed.test]\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not curl(proxy.url, "http://allowed.test/").stdout.endswith("\n403"):
        time.sleep(0.2)
    assert curl(proxy.url, "http://allowed.test/").stdout.endswith("\n403"), "fixed rules reload without restart"
    assert wait_for(lambda: "the rules on disk are broken" not in said(), timeout=30)


def test_malformed_requests_do_not_crash_the_proxy(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"allowed.test": origin.port})
    garbage = [
        b"GET http://exa mple.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://%zz%00.example/ HTTP/1.1\r\n\r\n",
        b"GET http://[::1/ HTTP/1.1\r\n\r\n",
        b"CONNECT :443 HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET http://a..b/ HTTP/1.1\r\nHost: a..b\r\n\r\n",
        b"GET http://999.1.1.1.1/ HTTP/1.1\r\n\r\n",
    ]
    for raw in garbage:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            s.sendall(raw)
            s.settimeout(3)
            try:
                s.recv(4096)
            except (TimeoutError, ConnectionResetError):
                pass
    assert curl(proxy.url, "http://allowed.test/after").stdout.endswith("\n200")
    assert proxy.proc.poll() is None


def test_a_tunnel_to_an_allowed_host_with_the_sni_of_a_blocked_one_is_closed(config_dir, make_proxy, tmp_path):
    tls_origin, cert = start_tls_origin(tmp_path, ["allowed.test", "www.bet365.com"])
    try:
        proxy = make_proxy(config_dir, routes={"allowed.test": tls_origin.port})
        # curl sends CONNECT allowed.test:443 but TLS SNI www.bet365.com.
        r = curl(proxy.url, "https://www.bet365.com/", "--cacert", str(cert),
                 "--connect-to", "www.bet365.com:443:allowed.test:443")
        assert r.returncode != 0 and not r.stdout.endswith("\n200"), r.stdout
        assert tls_origin.seen == []
        rows = proxy.wait_rows(1)
        blocked = [x for x in rows if x["action"] == "block"]
        assert [(x["host"], x["category"], x["method"], x["tls"]) for x in blocked] == [
            ("www.bet365.com", "gambling", "TLS", "sni-refused")]
    finally:
        tls_origin.close()


def test_mitmdump_with_the_addon_file_works_as_mitmproxy_users_expect(config_dir, tmp_path, origin):
    from tests.support.proxy import REPO, ROUTE_ADDON, free_port

    port = free_port()
    mitmdump = str(Path(sys.executable).with_name("mitmdump"))
    proc = subprocess.Popen([mitmdump, "-q", "-s", str(REPO / "proxy_addon" / "proxy" / "addon.py"), "-s", str(ROUTE_ADDON),
                             "--listen-host", "127.0.0.1", "--listen-port", str(port),
                             "--set", f"schoolproxy_config={config_dir}",
                             "--set", f"schoolproxy_audit_db=sqlite:///{tmp_path}/m.sqlite",
                             "--set", f"confdir={tmp_path}/conf", "--set", f"route_local=allowed.test={origin.port}"],
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        assert curl(url, "http://www.bet365.com/").stdout.endswith("\n403")
        assert curl(url, "http://allowed.test/").stdout.endswith("\n200")
    finally:
        proc.terminate()
        proc.wait(20)
    import sqlite3
    con = sqlite3.connect(tmp_path / "m.sqlite")
    assert [r[0] for r in con.execute("SELECT action FROM access_events ORDER BY id")] == ["block", "allow"]
    con.close()
