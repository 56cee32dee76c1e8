import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_addon.urls.normalize import (
    InvalidHost,
    InvalidURL,
    normalize_host,
    normalize_path,
    normalize_url,
    parse_ipv4,
    reversed_labels,
)


@pytest.mark.parametrize("raw,expected", [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("%65xample.com", "example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
    ("ｅｘａｍｐｌｅ。com", "example.com"),  # full-width letters and ideographic full stop
    ("3232235777", "192.168.1.1"),
    ("0xC0A80101", "192.168.1.1"),
    ("0300.0250.1.1", "192.168.1.1"),
    ("0xc0.0xa8.1.1", "192.168.1.1"),
    ("192.168.257", "192.168.1.1"),
    ("192.11010305", "192.168.1.1"),
    ("192.168.1.1.", "192.168.1.1"),
    ("[::1]", "::1"),
    ("[::ffff:192.168.1.1]", "192.168.1.1"),
    ("[::FFFF:C0A8:0101]", "192.168.1.1"),
    ("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
])
def test_hosts(raw, expected):
    assert normalize_host(raw) == expected


@pytest.mark.parametrize("raw", ["", ".", "a..b", "exa mple.com", "256.256.256.256.256", "1.2.3.4.5",
                                 "4294967296", "[::1", "999.1.1.1", "%ff%fe.com", "0x100000000"])
def test_invalid_hosts(raw):
    with pytest.raises((InvalidHost, InvalidURL)):
        normalize_url(f"http://{raw}/")


@pytest.mark.parametrize("raw,expected", [
    ("/a/./b/../c", "/a/c"),
    ("/%7Euser/%41bc", "/~user/Abc"),
    ("/a%2fb", "/a%2Fb"),
    ("/caf\u00e9", "/caf%C3%A9"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("\\windows\\path", "/windows/path"),
    ("/a b", "/a%20b"),
    ("/../../etc", "/etc"),
    ("", "/"),
    ("/x?q=1#frag", "/x"),
])
def test_paths(raw, expected):
    assert normalize_path(raw) == expected


def test_urls_default_ports_and_userinfo():
    t = normalize_url("HTTP://user:pw@WWW.Example.com:80/a/../b?q=1#f")
    assert (t.scheme, t.host, t.port, t.path, t.query) == ("http", "www.example.com", None, "/b", "q=1")
    assert normalize_url("https://example.com:443/").port is None
    assert normalize_url("https://example.com:8443/").port == 8443
    assert normalize_url("example.com/x").url == "http://example.com/x"
    assert normalize_url("http://[::1]:8080/").url == "http://[::1]:8080/"


def test_reversed_labels():
    assert reversed_labels("a.b.example.com") == "com.example.b.a."


label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-") and not s.endswith("-") and not s.isdigit() and not s.startswith("xn--")
    and not re.fullmatch(r"0x[0-9a-f]*", s))  # a numeric last label makes an IPv4 address
hostnames = st.lists(label, min_size=2, max_size=5).map(".".join)


@given(hostnames)
def test_normalising_twice_changes_nothing(host):
    once = normalize_host(host)
    assert normalize_host(once) == once


@given(hostnames, st.data())
def test_case_trailing_dot_and_percent_encoding_do_not_matter(host, data):
    mangled = "".join(c.upper() if data.draw(st.booleans()) else c for c in host)
    encoded = "".join(f"%{ord(c):02x}" if data.draw(st.booleans()) else c for c in mangled)
    assert normalize_host(encoded + ".") == normalize_host(host)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_spelling_is_the_same_address(n):
    addr = str(ipaddress.IPv4Address(n))
    octets = [int(x) for x in addr.split(".")]
    forms = [
        addr,
        str(n),
        hex(n),
        "0" + oct(n)[2:] if n else "0",
        ".".join(hex(o) for o in octets),
        ".".join("0" + oct(o)[2:] for o in octets),
        f"{octets[0]}.{octets[1]}.{octets[2] * 256 + octets[3]}",
        f"{octets[0]}.{(octets[1] << 16) + (octets[2] << 8) + octets[3]}",
        f"[::ffff:{addr}]",
    ]
    for form in forms:
        assert normalize_url(f"http://{form}/").host == addr, form


@given(st.text(max_size=40))
def test_parser_never_fails_unexpectedly(text):
    try:
        t = normalize_url("http://" + text)
    except (InvalidURL, InvalidHost):
        return
    assert t.host and t.path.startswith("/")
    assert normalize_url(t.url) == t


@given(st.text(alphabet="/.ab%2e~", max_size=30))
def test_paths_are_stable(path):
    once = normalize_path(path)
    assert normalize_path(once) == once and once.startswith("/")
    assert "/../" not in once and not once.endswith("/..")


def test_parse_ipv4_names_are_not_addresses():
    assert parse_ipv4("example.com") is None
    assert parse_ipv4("1.2.3.com") is None
