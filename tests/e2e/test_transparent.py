"""Transparent mode at a gateway (issue 32): a client machine with no proxy
configured, whose default route is a gateway running ``schoolproxy run
--mode transparent`` behind nftables rules, each a network namespace made
for the test.  curl and Chromium there get the block page for a blocked
HTTP site, a refused handshake for a blocked HTTPS site (by its SNI), and
the real page for allowed ones; every row names the device."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.netns import LAB_PROXY_PORT, GatewayLab, inside, sh
from tests.support.origin import start_origin, start_tls_origin
from tests.support.proxy import wait_for

FAR = "203.0.113.10"  # TEST-NET-3: routed to the gateway, never reached
FAR6 = "2001:db8::10"
PROXY_PORT = LAB_PROXY_PORT  # transparent: where the gateway's rules redirect to
REGULAR_PORT = LAB_PROXY_PORT - 1  # regular mode beside it, for devices set to use the proxy


@pytest.fixture
def gateway(lab, config_dir, make_proxy, tmp_path):
    """The proxy in transparent mode on the gateway, with origins beside it
    (on the gateway's loopback, reached through the test harness's routes)."""
    web = inside(lab.gateway, start_origin)
    secure, _cert = inside(lab.gateway, lambda: start_tls_origin(tmp_path, ["secure.test", "www.bet365.com"]))
    (config_dir / "rules" / "11-devices.yaml").write_text(
        f"devices:\n  - ip: {lab.client_ip}\n    user: lab-7\n    name: lab-pc-7\n"
        f"  - ip: {lab.client_ip6}\n    user: lab-7\n    name: lab-pc-7\n")
    proxy = make_proxy(config_dir, netns=lab.gateway, port=REGULAR_PORT,  # both modes in one process
                       routes={"allowed.test": web.port, "www.bet365.com": web.port, "secure.test": secure.port},
                       cli=["--mode", "regular", "--mode", f"transparent@{PROXY_PORT}", "--listen-host", ""])
    yield proxy, web, secure
    web.close()
    secure.close()


def curl(lab: GatewayLab, url: str, *extra: str) -> subprocess.CompletedProcess:
    """curl on the client, with no proxy: the name resolves to a far address."""
    host = url.split("/")[2]
    port = "443" if url.startswith("https") else "80"
    far = f"[{FAR6}]" if "-6" in extra else FAR
    return sh("curl", "-sS", "--noproxy", "*", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
              "--resolve", f"{host}:{port}:{far}", *extra, url, ns=lab.client, check=False)


def test_curl_on_a_client_with_no_proxy_set_is_filtered_at_the_gateway(lab, gateway):
    proxy, web, secure = gateway
    allowed = curl(lab, "http://allowed.test/hello")  # sent to FAR: fetched by the name judged, not the address
    assert allowed.stdout.endswith("\n200") and "hello from origin GET /hello" in allowed.stdout, allowed
    assert web.seen[-1].host == "allowed.test"

    blocked = curl(lab, "http://www.bet365.com/casino")
    assert blocked.stdout.endswith("\n403") and "Gambling" in blocked.stdout, blocked
    assert [s.path for s in web.seen] == ["/hello"], "a blocked request must never reach the origin"

    # HTTPS, nothing decrypted (tls: hostname): judged by its SNI
    refused = curl(lab, "https://www.bet365.com/", "-k")
    assert refused.returncode != 0 and not refused.stdout.rstrip("0\n"), refused
    assert secure.seen == []
    through = curl(lab, "https://secure.test/page", "-k")
    assert through.stdout.endswith("\n200") and "hello from origin GET /page" in through.stdout, through

    # IPv6 is redirected the same way
    six = curl(lab, "http://www.bet365.com/six", "-6")
    assert six.stdout.endswith("\n403"), six

    # the gateway's own pages: the CA for devices
    ca = sh("curl", "-sS", "--max-time", "10", f"http://{lab.gateway_ip}/ca", ns=lab.client, check=False)
    assert "fingerprint" in ca.stdout.lower(), ca

    # regular mode in the same process, one audit log: a device set to use the proxy
    proxied = sh("curl", "-sS", "--max-time", "10", "-x", f"http://{lab.gateway_ip}:{REGULAR_PORT}",
                 "http://allowed.test/proxied", ns=lab.client, check=False)
    assert "hello from origin GET /proxied" in proxied.stdout, proxied
    assert proxy.wait_rows(1, "url = 'http://allowed.test/proxied' AND mode = 'regular'")

    rows = proxy.wait_rows(6, "host IN ('allowed.test', 'www.bet365.com', 'secure.test') AND mode = 'transparent'")
    seen = {(r["host"], r["action"], r["tls"]) for r in rows}
    assert ("allowed.test", "allow", None) in seen
    assert ("www.bet365.com", "block", None) in seen  # the block page
    assert ("www.bet365.com", "block", "refused") in seen  # the handshake
    assert wait_for(lambda: ("secure.test", "allow", "passthrough") in {
        (r["host"], r["action"], r["tls"]) for r in proxy.rows("host = 'secure.test'")})
    rows = proxy.rows("host IN ('allowed.test', 'www.bet365.com', 'secure.test')")
    assert {(r["device"], r["user"]) for r in rows} == {("lab-pc-7", "lab-7")}, [dict(r) for r in rows]
    assert {r["client_ip"] for r in rows} == {lab.client_ip, lab.client_ip6}
    assert {r["mode"] for r in rows} == {"transparent", "regular"}
    assert not any(r["host"] in (FAR, FAR6, lab.gateway_ip) for r in proxy.rows())


def test_chromium_with_no_proxy_set_gets_the_block_page_and_the_real_pages(lab, gateway, browser_launcher,
                                                                           tmp_path):
    proxy, web, secure = gateway
    browser = browser_launcher(executable=lab.wrapper(tmp_path, "/usr/bin/chromium"),
                               args=[f"--host-resolver-rules=MAP * {FAR}", "--ignore-certificate-errors"])
    page = browser.new_page()
    page.goto("http://www.bet365.com/casino")
    assert "Gambling" in page.content()
    page.goto("http://allowed.test/chromium")
    assert "hello from origin GET /chromium" in page.content()
    page.goto("https://secure.test/tls")
    assert "hello from origin GET /tls" in page.content()
    with pytest.raises(Exception, match="ERR_"):
        page.goto("https://www.bet365.com/")
    browser.close()
    assert all(s.path != "/casino" for s in web.seen) and all(s.host != "www.bet365.com" for s in secure.seen)
    rows = proxy.wait_rows(4, "host IN ('allowed.test', 'www.bet365.com', 'secure.test')")
    assert {r["device"] for r in rows} == {"lab-pc-7"}
    assert {(r["host"], r["action"]) for r in rows} >= {("www.bet365.com", "block"), ("allowed.test", "allow")}
