"""The pure parts of issue 27: addresses carried inside addresses, the
openings of tunnelled protocols, the web-proxy patterns file and the
circumvention alert counter."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from proxy_addon.classify.engine import Engine
from proxy_addon.classify.protocols import describe, openvpn_tcp, tunnel_protocol
from proxy_addon.gate.verdict import verdict
from proxy_addon.monitor.alerts import Alert, CircumventionCounter, compose
from proxy_addon.policy.yamlsource import ConfigError
from proxy_addon.urls.embedded import embedded_urls, from_translate_goog, uv_xor
from proxy_addon.urls.normalize import make_target
from tests.support.proxy import REPO

CASINO = "https://www.bet365.com/"
NOW = datetime(2026, 12, 3, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("path,query", [
    ("/browse.php", "u=" + quote(CASINO, safe="") + "&b=4"),
    ("/index.php", "q=" + base64.b64encode(CASINO.encode()).decode()),
    ("/index.php", "q=" + base64.urlsafe_b64encode(CASINO.encode()).decode().rstrip("=")),
    ("/service/" + quote(uv_xor(CASINO), safe=""), ""),
    ("/proxy/" + CASINO, ""),
    ("/web/2024/" + CASINO, ""),
    ("/translate", "sl=auto&u=" + CASINO),
    ("/search", "q=cache:www.bet365.com/"),
    ("/go", "r=" + "uggcf://jjj.org365.pbz/"),  # rot13
])
def test_every_codec_yields_the_target(path, query):
    found = embedded_urls("relay.test", path, query)
    assert found and found[0].startswith(("https://www.bet365.com", "http://www.bet365.com"))


def test_ordinary_addresses_carry_nothing():
    for path, query in [("/search", "q=fractions+and+decimals"), ("/news/uk-12345678", "page=2&s=abcdefghijklmnop"),
                        ("/assets/abcdefghijklmnopqrstuvwxyz012345.js", ""), ("/watch", "v=dQw4w9WgXcQ")]:
        assert embedded_urls("site.test", path, query) == []


def test_translate_goog_host_names_its_target():
    assert from_translate_goog("www-bet365-com.translate.goog") == "www.bet365.com"
    assert from_translate_goog("my--site-example-org.translate.goog") == "my-site.example.org"
    assert from_translate_goog("translate.google.com") is None


def test_protocol_openings():
    assert tunnel_protocol(b"SSH-2.0-OpenSSH_9.2p1\r\n") == "SSH"
    reset = (14).to_bytes(2, "big") + bytes([7 << 3]) + b"\x00" * 13  # P_CONTROL_HARD_RESET_CLIENT_V2
    assert openvpn_tcp(reset) and tunnel_protocol(reset) == "OpenVPN"
    assert tunnel_protocol(b"\x05\x01\x00") == "SOCKS"
    assert tunnel_protocol(b"\x16\x03\x01\x02\x00") is None  # TLS in a CONNECT is what CONNECT is for
    assert tunnel_protocol(b"\x16\x03\x01\x02\x00", tls_is_tunnel=True) == "TLS"
    assert tunnel_protocol(b"GET / HTTP/1.1\r\n") is None
    assert describe(b"", b"SSH-2.0-x\r\n") == "SSH inside a tunnel (CONNECT)"


@pytest.fixture(scope="module")
def engine():
    return Engine.load(REPO)


def who(engine):
    return engine.identify("10.0.0.5", "alice")


@pytest.mark.parametrize("host,path", [
    ("unblock.test", "/proxy/https://www.bet365.com/"),
    ("translate.google.com", "/translate?u=https://www.bet365.com/"),
    ("web.archive.org", "/web/2024/https://www.bet365.com/"),
    ("www-bet365-com.translate.goog", "/"),
])
def test_a_relay_of_a_blocked_site_is_blocked_whatever_the_relay(engine, host, path):
    d = verdict(engine, (), make_target("https", host, 443, path), who(engine), NOW)
    assert d.action == "block" and d.rule == "circumvention:web-proxy", d


def test_shapes_alone_and_allowed_targets(engine):
    bare = verdict(engine, (), make_target("http", "relay.test", 80, "/bare/v3/"), who(engine), NOW)
    assert bare.action == "block" and "web-proxies.txt" in bare.reason
    ok = verdict(engine, (), make_target("https", "translate.google.com", 443,
                                         "/translate?u=https://www.bbc.co.uk/news"), who(engine), NOW)
    assert ok.action != "block"


def test_a_bad_web_proxy_line_is_a_file_line_problem(tmp_path):
    from tests.support.proxy import copy_config

    root = copy_config(tmp_path / "config")
    (root / "lists" / "school" / "web-proxies.txt").write_text("# mine\nurl ^/ok/\nurl ([unclosed\nquery x\n")
    with pytest.raises(ConfigError) as e:
        Engine.load(root)
    text = str(e.value)
    assert "lists/school/web-proxies.txt:3: bad regular expression" in text
    assert "lists/school/web-proxies.txt:4: expected 'url REGEX' or 'header REGEX'" in text


def test_alert_counter_tells_the_technician_once_and_the_lead_on_repeats():
    c = CircumventionCounter()
    got = [c.note(NOW, "alice", "web-proxy", True, 3) for _ in range(4)]
    assert got == ["technician", None, "high", None]
    assert c.note(NOW, "alice", "non-tls-tunnel", True, 3) == "technician"  # a new kind
    assert c.note(NOW, "bob", "web-proxy", False, 0) is None
    subject, body = compose([Alert(NOW, "alice", "10.0.0.5", "circumvention", None, "a web proxy or unblocker",
                                   severity="high")], timezone.utc)
    assert subject.startswith("Filter circumvention") and "repeated today" in body and "http" not in body
