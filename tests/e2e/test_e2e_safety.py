"""End to end: safe search enforcement and the ways round the filter (issue 7)."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.test_e2e_proxy import curl
from tests.support.origin import start_tls_origin
from tests.support.proxy import set_tls_mode

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_origin(tmp_path):
    origin, cert = start_tls_origin(tmp_path, ["www.google.com", "www.youtube.com", "allowed.test",
                                               "forcesafesearch.google.com", "doh.example", "cloudflare-dns.com"])
    origin.cert = cert
    yield origin
    origin.close()


def circumvention_rows(proxy, n):
    rows = proxy.wait_rows(n, "reason LIKE 'circumvention:%'")
    assert all(r["action"] == "block" for r in rows)
    return rows


def test_google_search_gains_safe_active_upstream_over_plain_http(config_dir, make_proxy, origin):
    proxy = make_proxy(config_dir, routes={"www.google.com": origin.port})
    r = curl(proxy.url, "http://www.google.com/search?q=fractions&safe=off")
    assert r.stdout.endswith("\n200")
    assert origin.seen[0].path == "/search?q=fractions&safe=active"
    row = proxy.wait_rows(1)[0]
    assert row["action"] == "allow" and "safe search enforced (google)" in row["reason"]


def test_intercepted_searches_and_youtube_are_forced_safe(config_dir, make_proxy, tls_origin):
    set_tls_mode(config_dir, "intercept")
    people = config_dir / "rules" / "10-people.yaml"
    people.write_text(people.read_text().replace("teaching: []", "teaching: [alice]"))
    proxy = make_proxy(config_dir, proxyauth="any", routes={
        "www.google.com": tls_origin.port, "forcesafesearch.google.com": tls_origin.port,
        "www.youtube.com": tls_origin.port, "restrict.youtube.com": tls_origin.port,
        "restrictmoderate.youtube.com": tls_origin.port, "www.bing.com": tls_origin.port,
        "strict.bing.com": tls_origin.port})
    ca = str(proxy.ca_cert)
    r = curl(proxy.url, "https://www.google.com/search?q=volcano&safe=off", "--cacert", ca,
             "--proxy-user", "bob:x", "-b", "PREF=safe=off")
    assert r.stdout.endswith("\n200"), r.stderr
    r = curl(proxy.url, "https://www.youtube.com/watch?v=abc", "--cacert", ca, "--proxy-user", "bob:x",
             "-H", "YouTube-Restrict: Off")
    assert r.stdout.endswith("\n200"), r.stderr
    r = curl(proxy.url, "https://www.youtube.com/watch?v=def", "--cacert", ca, "--proxy-user", "alice:x")
    assert r.stdout.endswith("\n200"), r.stderr
    r = curl(proxy.url, "https://www.bing.com/search?q=x&adlt=off", "--cacert", ca, "--proxy-user", "bob:x")
    assert r.stdout.endswith("\n200"), r.stderr
    google, yt_bob, yt_alice, bing = tls_origin.seen
    assert google.path == "/search?q=volcano&safe=active" and google.host == "www.google.com"
    assert yt_bob.headers["YouTube-Restrict"] == "Strict"
    assert yt_alice.headers["YouTube-Restrict"] == "Moderate"  # teaching staff: a relaxed level
    assert bing.path == "/search?q=x&adlt=strict"


def test_without_decryption_the_tunnel_goes_to_the_forced_safe_front_end(config_dir, make_proxy, origin, tmp_path):
    safe_front, cert = start_tls_origin(tmp_path, ["www.google.com"])
    try:
        # www.google.com itself is routed to a plain origin that would fail TLS: only the front end answers.
        proxy = make_proxy(config_dir, routes={"www.google.com": origin.port,
                                               "forcesafesearch.google.com": safe_front.port})
        r = curl(proxy.url, "https://www.google.com/search?q=x", "--cacert", str(cert))
        assert r.stdout.endswith("\n200"), r.stderr
        assert [s.path for s in safe_front.seen] == ["/search?q=x"] and origin.seen == []
        row = proxy.wait_rows(1)[0]
        assert row["method"] == "CONNECT" and "tunnel to forcesafesearch.google.com" in row["reason"]
    finally:
        safe_front.close()


def test_dns_over_https_is_blocked_by_host_by_path_and_by_content_type(config_dir, make_proxy, tls_origin, origin):
    set_tls_mode(config_dir, "intercept")
    proxy = make_proxy(config_dir, routes={"cloudflare-dns.com": tls_origin.port, "doh.example": tls_origin.port,
                                           "dns.google": origin.port})
    ca = str(proxy.ca_cert)
    known = curl(proxy.url, "https://cloudflare-dns.com/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB",
                 "--cacert", ca)
    # A resolver is a way round the filter: its tunnel is refused in every mode, no block page inside TLS.
    assert known.returncode != 0 and "403" in known.stderr, known.stderr
    by_path = curl(proxy.url, "https://doh.example/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB",
                   "--cacert", ca)
    assert by_path.stdout.endswith("\n403") and "Getting round the school" in by_path.stdout
    by_type = curl(proxy.url, "https://doh.example/q", "--cacert", ca, "-H", "Content-Type: application/dns-message",
                   "--data-binary", "binary-dns-message")
    assert by_type.stdout.endswith("\n403")
    plain = curl(proxy.url, "http://dns.google/resolve?name=example.com")
    assert plain.stdout.endswith("\n403")
    resolver_home = curl(proxy.url, "https://cloudflare-dns.com/", "--cacert", ca)
    assert resolver_home.returncode != 0 and "403" in resolver_home.stderr
    assert tls_origin.seen == [] and origin.seen == []
    rows = circumvention_rows(proxy, 5)
    assert [r["rule"] for r in rows] == ["category:dns_over_https"] + ["circumvention:doh"] * 3 + [
        "category:dns_over_https"]
    assert rows[0]["method"] == "CONNECT" and rows[0]["tls"] == "refused"


def test_domain_fronting_is_judged_on_every_name(config_dir, make_proxy, tls_origin):
    set_tls_mode(config_dir, "intercept")
    proxy = make_proxy(config_dir, routes={"allowed.test": tls_origin.port, "www.bet365.com": tls_origin.port})
    # TLS SNI and CONNECT say allowed.test; the Host header says a gambling site.
    r = curl(proxy.url, "https://allowed.test/", "--cacert", str(proxy.ca_cert), "-H", "Host: www.bet365.com")
    assert r.stdout.endswith("\n403") and "Gambling" in r.stdout
    assert tls_origin.seen == []
    row = circumvention_rows(proxy, 1)[0]
    assert row["rule"] == "circumvention:fronting" and row["category"] == "gambling"
    assert "allowed.test" in row["reason"] and "www.bet365.com" in row["reason"]


def test_connect_to_other_ports_and_non_tls_tunnels_are_refused(config_dir, make_proxy, tls_origin):
    set_tls_mode(config_dir, "intercept")
    proxy = make_proxy(config_dir, routes={"allowed.test": tls_origin.port})
    r = curl(proxy.url, "https://allowed.test:22/")
    assert r.returncode != 0 and "403" in r.stderr
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
        assert b" 200 " in s.recv(1024)
        s.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
        s.settimeout(5)
        data = b""
        try:
            while chunk := s.recv(1024):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"SSH" not in data and tls_origin.seen == []
    rows = circumvention_rows(proxy, 2)
    assert [(r["rule"], r["method"], r["host"]) for r in rows] == [
        ("circumvention:connect-port", "CONNECT", "allowed.test"),
        ("circumvention:non-tls-tunnel", "CONNECT", "allowed.test")]


def test_bare_ip_addresses_in_every_spelling(config_dir, make_proxy):
    with open(config_dir / "lists" / "school" / "anonymizers.txt", "a") as fh:
        fh.write("198.51.100.7\n")
    proxy = make_proxy(config_dir)
    listed = ["198.51.100.7", "3325256711", "0xc6336407", "0306.063.0144.07", "198.51.25607"]
    for form in listed:
        r = curl(proxy.url, f"http://{form}/")
        assert r.stdout.endswith("\n403") and "Anonymizers" in r.stdout, (form, r.stdout[-300:])
    unlisted = curl(proxy.url, "http://1572395042/")  # 93.184.216.34: public, in no list
    assert unlisted.stdout.endswith("\n403") and "IP address" in unlisted.stdout
    rows = circumvention_rows(proxy, 6)
    assert {r["host"] for r in rows} == {"198.51.100.7", "93.184.216.34"}
    assert [r["rule"] for r in rows].count("category:anonymizers") == 5
    assert rows[-1]["rule"] == "circumvention:bare-ip"
