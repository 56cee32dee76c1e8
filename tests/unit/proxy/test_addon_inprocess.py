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
