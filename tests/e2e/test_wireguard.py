"""Devices off site through WireGuard (issue 32): a laptop enrolled with
``schoolproxy devices add`` runs a real WireGuard client (wireguard-go, set
up with wg) in a network namespace of its own and sends everything through
the tunnel to ``schoolproxy run --mode wireguard``.  Blocked sites are
blocked, allowed ones served, every row names the device and its person by
the peer's key, and a revoked device can no longer connect, with no
restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.netns import LAB_PROXY_PORT, WireGuardClient, inside, sh
from tests.support.origin import start_origin, start_tls_origin
from tests.support.proxy import wait_for
from tests.support.tunnels import start_openvpn_udp_client, start_openvpn_udp_server

EXE = str(Path(sys.executable).with_name("schoolproxy"))
FAR = "203.0.113.10"
PROXY_PORT = LAB_PROXY_PORT


def devices(proxy, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "devices", *args, "--data-dir", str(proxy.workdir / "data")],
                          capture_output=True, text=True)


UDP_FAR = "203.0.113.20"

def curl(client: WireGuardClient, url: str, *extra: str, timeout: int = 10) -> subprocess.CompletedProcess:
    host = url.split("/")[2]
    port = "443" if url.startswith("https") else "80"
    return sh("curl", "-sS", "--noproxy", "*", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}",
              "--resolve", f"{host}:{port}:{FAR}", *extra, url, ns=client.lab.client, check=False)


def test_an_enrolled_laptop_is_filtered_through_wireguard_and_revoking_it_shuts_it_out(lab, config_dir, make_proxy,
                                                                                         tmp_path):
    web = inside(lab.gateway, start_origin)
    secure, _ = inside(lab.gateway, lambda: start_tls_origin(tmp_path, ["secure.test", "www.bet365.com"]))
    # where an OpenVPN tunnel over UDP through the device's WireGuard would go: a real server
    vpn, vpn_key = start_openvpn_udp_server(tmp_path / "openvpn", lab.gateway)
    lab.etc(lab.gateway, "hosts", "127.0.0.1 localhost\n198.51.100.7 intranet.school.test\n")  # the proxy's resolver
    lab.etc(lab.client, "resolv.conf", "nameserver 10.0.0.53\n")  # as the device's configuration says
    proxy = make_proxy(config_dir, netns=lab.gateway, port=PROXY_PORT,
                       routes={"allowed.test": web.port, "www.bet365.com": web.port, "secure.test": secure.port,
                               UDP_FAR: vpn.port},
                       cli=["--mode", "wireguard", "--listen-host", ""])
    db = f"sqlite:///{proxy.db_path}"
    added = devices(proxy, "add", "laptop-17", "--user", "alice", "--by", "tech", "--endpoint", lab.gateway_ip,
                    "--audit-db", db)
    assert added.returncode == 0, added.stderr
    conf = added.stdout[added.stdout.index("[Interface]"):added.stdout.index("PersistentKeepalive = 25") + 25]
    assert "UDP port 51820" in added.stdout and "█" in added.stdout  # the port to open, and the QR code
    # the proxy opens the device's listener within a second, with no restart
    assert wait_for(lambda: "51820" in sh("ss", "-Hlun", ns=lab.gateway).stdout, timeout=15), proxy.output()
    client = WireGuardClient(lab, conf, tmp_path)
    try:
        allowed = curl(client, "http://allowed.test/hello")
        assert allowed.stdout.endswith("\n200") and "hello from origin GET /hello" in allowed.stdout, allowed
        blocked = curl(client, "http://www.bet365.com/casino")
        assert blocked.stdout.endswith("\n403") and "Gambling" in blocked.stdout, blocked
        refused = curl(client, "https://www.bet365.com/", "-k")
        assert refused.returncode != 0 and secure.seen == [], refused
        through = curl(client, "https://secure.test/page", "-k")
        assert through.stdout.endswith("\n200") and "GET /page" in through.stdout, through
        assert [s.path for s in web.seen] == ["/hello"]
        # DNS in the tunnel is answered by the proxy's own resolver
        looked_up = sh("getent", "ahostsv4", "intranet.school.test", ns=lab.client, check=False)
        assert "198.51.100.7" in looked_up.stdout, looked_up
        # UDP that is neither DNS nor QUIC is refused: a real OpenVPN client on the laptop pings its
        # server for 3 s, hears nothing back and gives up; the server never heard from it
        laptop_vpn = start_openvpn_udp_client(tmp_path / "openvpn", vpn_key, lab.client, UDP_FAR, 1194)
        try:
            assert wait_for(lambda: "Inactivity timeout" in laptop_vpn.text(), timeout=30), laptop_vpn.text()
        finally:
            laptop_vpn.stop()
        assert wait_for(lambda: proxy.rows(f"host = '{UDP_FAR}' AND rule = 'circumvention:non-tls-tunnel'"))
        assert "Peer Connection Initiated" not in vpn.text() and "Incoming packet" not in vpn.text(), vpn.text()
        # the same client where nothing filters (beside the server) does connect: the server's log would say so
        beside = start_openvpn_udp_client(tmp_path / "openvpn", vpn_key, lab.gateway, "127.0.0.1", vpn.port, "beside")
        try:
            assert wait_for(lambda: "Peer Connection Initiated" in vpn.text(), timeout=30), vpn.text()
        finally:
            beside.stop()

        rows = proxy.wait_rows(3, "host IN ('allowed.test', 'www.bet365.com')")
        assert {(r["user"], r["device"], r["mode"]) for r in rows} == {("alice", "laptop-17", "wireguard")}
        assert {(r["host"], r["action"]) for r in rows} >= {("allowed.test", "allow"), ("www.bet365.com", "block")}
        assert wait_for(lambda: proxy.rows("host = 'secure.test' AND device = 'laptop-17'"))
        # status and metrics name the modes (the status file is written every two seconds)
        assert wait_for(lambda: "modes regular, wireguard (1 devices)" in subprocess.run(
            [EXE, "status", "--data-dir", str(proxy.workdir / "data")], capture_output=True, text=True).stdout,
            timeout=15)
        metrics = sh("curl", "-sS", f"http://127.0.0.1:{PROXY_PORT}/metrics", ns=lab.gateway).stdout
        assert 'schoolproxy_requests_by_mode_total{mode="wireguard"} ' in metrics
        assert 'schoolproxy_requests_by_mode_total{mode="wireguard"} 0.0' not in metrics

        revoked = devices(proxy, "revoke", "laptop-17", "--reason", "reported stolen", "--by", "tech",
                          "--audit-db", db)
        assert revoked.returncode == 0, revoked.stderr
        assert wait_for(lambda: "51820" not in sh("ss", "-Hlun", ns=lab.gateway).stdout, timeout=15)
        shut = curl(client, "http://allowed.test/after", timeout=5)
        assert shut.returncode != 0, shut
        assert not proxy.rows("url LIKE '%/after'") and [s.path for s in web.seen] == ["/hello"]
    finally:
        client.stop()
        web.close()
        secure.close()
        vpn.stop()
    listed = devices(proxy, "list").stdout
    assert "laptop-17\talice\tUDP 51820" in listed and "revoked" in listed and "reported stolen" in listed
    key = conf.split("PrivateKey = ", 1)[1].split("\n", 1)[0]
    assert key not in proxy.output()  # the device's private key is never logged
    assert not (proxy.workdir / "data" / "wireguard" / "laptop-17.conf").exists()  # revoked: its key is gone
    import sqlite3

    with sqlite3.connect(proxy.db_path) as c:
        actions = c.execute("SELECT actor, action, target FROM admin_actions ORDER BY id").fetchall()
    assert ("tech", "device-add", "laptop-17") in actions and ("tech", "device-revoke", "laptop-17") in actions
