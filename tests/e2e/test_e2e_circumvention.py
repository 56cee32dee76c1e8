"""End to end, as a determined member of staff would try it (issue 27): real
ssh, OpenVPN, a WebSocket tunnel and two real unblocker packages against
local servers, through a real proxy in each TLS mode.  Each test shows that
no byte crossed (the far side saw no connection, or no request), that the
audit row says refused, and that the technician was told."""

from __future__ import annotations

import base64
import time

import pytest

from tests.e2e.test_e2e_proxy import curl
from tests.support.origin import start_origin
from tests.support.proxy import set_tls_mode
from tests.support.tunnels import (
    connections,
    ssh,
    start_openvpn_client,
    start_openvpn_server,
    start_sshd,
    start_unblockers,
    start_websockify,
    ws_pipe_command,
)

pytestmark = pytest.mark.e2e
MODES = ["hostname", "selective", "intercept"]
VPN_HOST = "nordvpn.com"  # in lists/starter/anonymizers.txt


@pytest.fixture
def sshd(tmp_path):
    server, key = start_sshd(tmp_path / "sshd")
    server.key = key
    yield server
    server.stop()


def alerting(config_dir, smtp) -> None:
    """Alerts to a local SMTP server: the technician (system_to) and the safeguarding lead."""
    mon = config_dir / "rules" / "50-monitoring.yaml"
    mon.write_text(mon.read_text().replace("    batch_seconds: 60\n", f"""    batch_seconds: 1
    email: {{host: 127.0.0.1, port: {smtp.port}, from: web-filter@school.example, to: [dsl@school.example],
             system_to: [technician@school.example]}}
"""))


def wait_mail(smtp, n: int = 1, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(smtp.messages) < n:
        time.sleep(0.1)
    return smtp.messages


def refused_row(proxy, rule: str, host: str):
    rows = proxy.wait_rows(1, "rule = ? AND host = ?", (rule, host), timeout=20)
    assert rows, proxy.rows()
    row = rows[0]
    assert row["action"] == "block" and row["reason"].startswith("circumvention:")
    return row


@pytest.mark.parametrize("mode", MODES)
def test_ssh_inside_a_connect_to_443_never_reaches_sshd(mode, config_dir, make_proxy, sshd, smtp):
    set_tls_mode(config_dir, mode)
    alerting(config_dir, smtp)
    proxy = make_proxy(config_dir, routes={"allowed.test": sshd.port})
    before = connections(sshd)
    r = ssh(sshd.key, proxy.port, "allowed.test", 443)
    assert "crossed" not in r.stdout and r.returncode != 0
    assert "Remote protocol version" not in r.stderr  # not even sshd's banner came back
    row = refused_row(proxy, "circumvention:non-tls-tunnel", "allowed.test")
    assert row["tls"] == "refused" and "SSH inside a tunnel" in row["reason"]
    assert connections(sshd) == before  # sshd never saw a connection
    mail = wait_mail(smtp)
    assert [m[0] for m in mail] == [["technician@school.example"]]
    assert "a VPN or SSH tunnel" in mail[0][1] and "allowed.test" not in mail[0][1]


@pytest.mark.parametrize("mode", MODES)
def test_ssh_to_a_bare_ip_on_22_and_to_a_listed_vpn_host_are_refused_before_200(mode, config_dir, make_proxy, sshd):
    set_tls_mode(config_dir, mode)
    proxy = make_proxy(config_dir, routes={"93.184.216.34": sshd.port, VPN_HOST: sshd.port})
    before = connections(sshd)
    for host, port, rule in [("93.184.216.34", 22, "circumvention:connect-port"),
                             ("93.184.216.34", 443, "circumvention:bare-ip"),
                             (VPN_HOST, 443, "category:anonymizers")]:
        r = ssh(sshd.key, proxy.port, host, port)
        assert "crossed" not in r.stdout and "403" in r.stderr, (host, port, r.stderr[-500:])
        row = refused_row(proxy, rule, host)
        assert row["status_code"] == 403 and row["tls"] == "refused" and row["method"] == "CONNECT"
    assert connections(sshd) == before


@pytest.mark.parametrize("mode", MODES)
def test_openvpn_through_the_proxy_never_connects(mode, config_dir, make_proxy, tmp_path, smtp):
    set_tls_mode(config_dir, mode)
    alerting(config_dir, smtp)
    server, key = start_openvpn_server(tmp_path / "ovpn")
    client = None
    try:
        proxy = make_proxy(config_dir, routes={"allowed.test": server.port, VPN_HOST: server.port})
        before = connections(server)
        client = start_openvpn_client(tmp_path / "ovpn", key, proxy.port, "allowed.test", 443)
        row = refused_row(proxy, "circumvention:non-tls-tunnel", "allowed.test")
        # OpenVPN with a static key opens with encrypted data, no reset packet: refused as neither TLS nor HTTP.
        assert "closed before anything was relayed" in row["reason"] and row["tls"] == "refused"
        client.proc.wait(60)  # it gives up after its retries
        assert "Initialization Sequence Completed" not in client.text()
        assert connections(server) == before, server.text()[-2000:]
        listed = start_openvpn_client(tmp_path / "ovpn", key, proxy.port, VPN_HOST, 443)
        refused_row(proxy, "category:anonymizers", VPN_HOST)
        listed.proc.wait(60)
        assert connections(server) == before
        mail = wait_mail(smtp)
        assert mail and "a VPN or SSH tunnel" in mail[0][1], mail
    finally:
        if client is not None:
            client.stop()
        server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_ssh_over_a_websocket_tunnel_is_closed_at_its_first_message(mode, config_dir, make_proxy, sshd, tmp_path,
                                                                    smtp):
    set_tls_mode(config_dir, mode)
    alerting(config_dir, smtp)
    relay = start_websockify(tmp_path, sshd.port)
    try:
        proxy = make_proxy(config_dir, routes={"tunnel.test": relay.port})
        before = connections(sshd)
        r = ssh(sshd.key, proxy.port, "tunnel.test", 443,
                proxy_command=ws_pipe_command("ws://tunnel.test:443/", proxy.port))
        assert "crossed" not in r.stdout and "Remote protocol version" not in r.stderr, r.stderr[-1500:]
        row = refused_row(proxy, "circumvention:websocket-tunnel", "tunnel.test")
        assert "SSH inside a WebSocket" in row["reason"] and row["method"] == "WEBSOCKET"
        # websockify opened its TCP connection to sshd when the WebSocket opened, so sshd
        # saw one connection; its banner was the message dropped, and nothing of ssh's reached it.
        assert connections(sshd) <= before + 1
        assert "Connection closed by 127.0.0.1" in sshd.text() or "banner exchange" in sshd.text() \
            or connections(sshd) == before
        assert "Authenticat" not in sshd.text()
        mail = wait_mail(smtp)
        assert mail and "a tunnel inside a WebSocket" in mail[0][1], mail
    finally:
        relay.stop()


@pytest.fixture
def unblockers(tmp_path):
    server = start_unblockers(tmp_path)
    casino = start_origin()  # the stand-in for a blocked site the unblockers would fetch
    server.casino = casino
    yield server
    casino.close()
    server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_node_unblocker_cannot_fetch_a_blocked_site(mode, config_dir, make_proxy, unblockers, smtp):
    set_tls_mode(config_dir, mode)
    alerting(config_dir, smtp)
    proxy = make_proxy(config_dir, routes={"unblock.test": unblockers.port})
    target = f"http://www.bet365.com:{unblockers.casino.port}/casino"
    r = curl(proxy.url, f"http://unblock.test/proxy/{target}")
    assert r.stdout.endswith("\n403") and "round the school" in r.stdout, r.stdout[-400:]
    assert unblockers.casino.seen == []
    refused_row(proxy, "circumvention:web-proxy", "unblock.test")
    assert wait_mail(smtp) and "a web proxy or unblocker" in smtp.messages[0][1]


@pytest.mark.parametrize("mode", MODES)
def test_a_bare_server_cannot_fetch_a_blocked_site(mode, config_dir, make_proxy, unblockers, smtp):
    """What Ultraviolet's service worker sends its bare server (v3: the target in X-Bare-URL)."""
    set_tls_mode(config_dir, mode)
    alerting(config_dir, smtp)
    proxy = make_proxy(config_dir, routes={"relay.test": unblockers.port})
    target = f"http://www.bet365.com:{unblockers.casino.port}/casino"
    r = curl(proxy.url, "http://relay.test/bare/v3/", "-H", f"X-Bare-URL: {target}", "-H", "X-Bare-Headers: {}")
    assert r.stdout.endswith("\n403"), r.stdout[-400:]
    # The same relay under another path: the headers give it away.
    r = curl(proxy.url, "http://relay.test/bare/v3/?cache=1", "-H", f"X-Bare-URL: {target}",
             "-H", "X-Bare-Headers: {}")
    assert r.stdout.endswith("\n403")
    assert unblockers.casino.seen == []
    refused_row(proxy, "circumvention:web-proxy", "relay.test")
    mail = wait_mail(smtp)
    assert len(mail) == 1 and "a web proxy or unblocker" in mail[0][1]  # two attempts, one alert for the technician


def test_unblocker_addresses_in_every_codec_are_judged_as_their_target(config_dir, make_proxy, origin):
    """Glype, PHP-Proxy and Ultraviolet shapes on an unlisted host, each carrying a gambling site."""
    # Unlisted names that say nothing (a host called "proxy" is suspected by its name alone).
    proxy = make_proxy(config_dir, routes={"static-files.test": origin.port, "lessons.test": origin.port})
    casino = "https://www.bet365.com/"
    b64 = base64.b64encode(casino.encode()).decode()
    xor = "".join(chr(ord(c) ^ 2) if i % 2 else c for i, c in enumerate(casino))
    from urllib.parse import quote
    for path in [f"/browse.php?u={quote(casino, safe='')}&b=4", f"/index.php?q={b64}",
                 f"/service/{quote(xor, safe='')}", f"/go?to={b64.rstrip('=')}"]:
        r = curl(proxy.url, f"http://static-files.test{path}")
        assert r.stdout.endswith("\n403"), (path, r.stdout[-300:])
    ok = curl(proxy.url, "http://lessons.test/page?ref=" + quote("https://www.bbc.co.uk/bitesize", safe=""))
    assert ok.stdout.endswith("\n200")  # an allowed target carried in a link is fine
    assert [s.path for s in origin.seen] == ["/page?ref=" + quote("https://www.bbc.co.uk/bitesize", safe="")]


def test_translate_cache_and_archive_are_judged_by_what_they_fetch(config_dir, make_proxy, tmp_path):
    from tests.support.origin import start_tls_origin

    set_tls_mode(config_dir, "intercept")
    services, _ = start_tls_origin(tmp_path, ["translate.google.com", "web.archive.org", "www-bet365-com.translate.goog",
                                              "webcache.googleusercontent.com", "www-bbc-co-uk.translate.goog"])
    try:
        proxy = make_proxy(config_dir, routes={h: services.port for h in [
            "translate.google.com", "web.archive.org", "www-bet365-com.translate.goog",
            "webcache.googleusercontent.com", "www-bbc-co-uk.translate.goog"]})
        ca = str(proxy.ca_cert)
        for url in ["https://translate.google.com/translate?sl=auto&tl=en&u=https://www.bet365.com/",
                    "https://web.archive.org/web/2024/https://www.bet365.com/",
                    "https://webcache.googleusercontent.com/search?q=cache:www.bet365.com/"]:
            r = curl(proxy.url, url, "--cacert", ca)
            assert r.stdout.endswith("\n403") and "Gambling" in r.stdout, (url, r.stdout[-300:])
        # The host names its target: a way round the filter, refused at the CONNECT as in every mode.
        r = curl(proxy.url, "https://www-bet365-com.translate.goog/?_x_tr_sl=auto", "--cacert", ca)
        assert r.returncode != 0 and "403" in r.stderr
        assert services.seen == []
        ok = curl(proxy.url, "https://www-bbc-co-uk.translate.goog/news", "--cacert", ca)
        assert ok.stdout.endswith("\n200")
        rows = proxy.wait_rows(4, "rule = 'circumvention:web-proxy'")
        assert len(rows) == 4 and all(r["category"] == "gambling" for r in rows)
    finally:
        services.close()


def test_translate_goog_host_is_refused_even_without_decryption(config_dir, make_proxy, tmp_path):
    from tests.support.origin import start_tls_origin

    services, _ = start_tls_origin(tmp_path, ["www-bet365-com.translate.goog"])
    try:
        proxy = make_proxy(config_dir, routes={"www-bet365-com.translate.goog": services.port})
        r = curl(proxy.url, "https://www-bet365-com.translate.goog/")
        assert r.returncode != 0 and "403" in r.stderr
        assert services.seen == []
        refused_row(proxy, "circumvention:web-proxy", "www-bet365-com.translate.goog")
    finally:
        services.close()


@pytest.mark.parametrize("mode", ["selective", "intercept"])
def test_a_passthrough_tunnel_is_judged_by_its_sni(mode, config_dir, make_proxy, tmp_path):
    """CONNECT names an allowed host that passes through; the ClientHello names a gambling site."""
    from tests.support.origin import start_tls_origin

    set_tls_mode(config_dir, mode)
    site, cert = start_tls_origin(tmp_path, ["www.hsbc.co.uk", "www.bet365.com", "cdn.allowed.test"])
    try:
        connect_host = "cdn.allowed.test" if mode == "selective" else "www.hsbc.co.uk"  # passes through undecrypted
        proxy = make_proxy(config_dir, routes={connect_host: site.port, "www.bet365.com": site.port})
        r = curl(proxy.url, "https://www.bet365.com/", "--cacert", str(cert),
                 "--connect-to", f"www.bet365.com:443:{connect_host}:443")
        assert r.returncode != 0 and site.seen == [], r.stdout[-300:]
        row = refused_row(proxy, "circumvention:fronting", "www.bet365.com")
        assert row["tls"] == "sni-refused" and connect_host in row["reason"]
    finally:
        site.close()
