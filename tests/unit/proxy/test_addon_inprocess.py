"""In process, with mitmproxy's test helpers: the addon's hooks judge,
answer and record a request exactly as they do under mitmdump (the same
behaviours are checked end to end, on the wire, in ``tests/e2e``)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from mitmproxy import http

from tests.support.addon import harness


@pytest.fixture
def h(config_dir, tmp_path):
    with harness(config_dir, tmp_path) as h:
        yield h


def test_a_prohibited_site_gets_the_block_page_naming_its_category_and_clause(h):
    f = h.get("http://www.bet365.com/")
    assert f.response.status_code == 403
    page = f.response.get_text()
    assert "Gambling" in page and "6.3.1" in page and f.response.headers["x-schoolproxy-category"] == "gambling"
    row = h.rows("host = 'www.bet365.com'")[0]
    assert (row["user"], row["action"], row["category"], row["clause"]) == ("alice", "block", "gambling", "6.3.1")
    assert row["event_uid"] and "Ask for an exception" in page  # its buttons name the event (signed)


def test_a_block_no_grant_can_lift_offers_no_exception_request(h):
    """Adult is not bypassable: the block page says no exception can be made
    (the Headteacher's Grant button would only fail); the self-report stays."""
    page = h.get("http://pornhub.com/").response.get_text()
    assert "Pornography" in page and 'id="self-report"' in page
    assert "Ask for an exception" not in page and 'id="no-exception"' in page
    assert "policy allows no exception for this category" in page


def test_an_allowed_request_passes_untouched_and_is_recorded(h):
    origin = http.Response.make(200, b"<p>lesson</p>", {"Content-Type": "text/html"})
    f = h.get("http://allowed.school.test/page?x=1", response=origin)
    assert f.response.status_code == 200 and f.response.content == b"<p>lesson</p>"
    row = h.rows("host = 'allowed.school.test'")[0]
    assert row["action"] == "allow" and row["url"] == "http://allowed.school.test/page?x=1" and row["bytes_out"] == 13


def test_a_host_header_naming_a_blocked_site_is_fronting(h):
    f = h.flow("http://allowed.school.test/")
    f.request.headers["Host"] = "www.bet365.com"
    h.run(h._hook("requestheaders", f))
    h.run(h._hook("request", f))
    assert f.response is not None and f.response.status_code == 403
    h.run(h._hook("response", f))
    assert h.rows("rule = 'circumvention:fronting'")[0]["category"] == "gambling"


def test_an_unblocker_carrying_a_blocked_address_is_blocked(h):
    f = h.get("http://relay.example.org/browse.php?u=" + quote("https://www.bet365.com/", safe="") + "&b=4")
    assert f.response.status_code == 403
    assert h.rows("host = 'relay.example.org'")[0]["action"] == "block"


def test_a_failing_judgement_is_closed_and_recorded(h, monkeypatch):
    def broken(*a, **kw):
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(h.addon.rt.engine, "decide", broken)
    f = h.get("http://allowed.school.test/")
    assert f.response.status_code >= 500 or f.response.status_code == 403
    assert b"lesson" not in f.response.content
    row = h.rows("host = 'allowed.school.test'")[0]
    assert row["action"] == "block" and row["rule"] == "error"


def transparent(f: http.HTTPFlow, sent_to: str = "203.0.113.10") -> http.HTTPFlow:
    """As mitmproxy hands over a redirected request: its host is the address
    the device sent it to, its name only in the Host header."""
    from mitmproxy.proxy.mode_specs import ProxyMode

    f.client_conn.proxy_mode = ProxyMode.parse("transparent")
    f.client_conn.sockname = (sent_to, f.request.port)
    f.request.data.host = sent_to
    return f


def test_a_redirected_request_is_judged_and_fetched_by_the_name_it_gives(h):
    blocked = transparent(h.flow("http://www.bet365.com/", user=None))
    h.run(h._hook("requestheaders", blocked))
    assert blocked.response is not None and blocked.response.status_code == 403
    assert "Gambling" in blocked.response.get_text()
    h.run(h._hook("response", blocked))
    allowed = transparent(h.flow("http://allowed.school.test/page", user=None))
    h.run(h._hook("requestheaders", allowed))
    assert allowed.response is None
    assert allowed.request.host == "allowed.school.test"  # not the address the device chose
    assert h.rows("host = 'www.bet365.com'")[0]["client_ip"] == "10.0.0.9"


class Hello:
    """What ``tls_clienthello`` reads of a redirected connection's handshake."""

    def __init__(self, f: http.HTTPFlow, sni: str | None, sent_to: str = "203.0.113.10") -> None:
        from types import SimpleNamespace

        self.context = SimpleNamespace(client=f.client_conn, server=f.server_conn)
        f.server_conn.address = (sent_to, 443)
        self.client_hello = SimpleNamespace(sni=sni)
        self.ignore_connection = False


def test_a_redirected_handshake_is_judged_by_its_sni_and_goes_to_that_name(h):
    refused = Hello(transparent(h.flow("https://www.bet365.com/", user=None)), "www.bet365.com")
    h.run(h._hook("tls_clienthello", refused))
    rows = h.rows("host = 'www.bet365.com'")
    assert (rows[0]["action"], rows[0]["tls"], rows[0]["method"]) == ("block", "refused", "TLS")
    assert refused.context.server.address == ("203.0.113.10", 443)  # never connected anywhere
    allowed = Hello(transparent(h.flow("https://allowed.school.test/", user=None)), "allowed.school.test")
    h.run(h._hook("tls_clienthello", allowed))
    assert allowed.ignore_connection and allowed.context.server.address == ("allowed.school.test", 443)
    bare = Hello(transparent(h.flow("https://93.184.216.34/", user=None)), None, "93.184.216.34")
    h.run(h._hook("tls_clienthello", bare))
    assert h.rows("host = '93.184.216.34'")[0]["action"] == "block"  # no name: a public bare address, refused
    assert bare.context.server.address == ("93.184.216.34", 443)
