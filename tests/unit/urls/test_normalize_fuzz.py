"""Property-based fuzzing of the normaliser and the decision: no spelling of
a blocked host is allowed, and what comes out of the normaliser is canonical."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy_addon.classify.engine import Engine
from proxy_addon.urls.normalize import InvalidHost, InvalidURL, make_target, normalize_host

ENGINE = Engine.load(None)
WHO = ENGINE.identify("10.0.0.1")
AT = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
BLOCKED = ["www.bet365.com", "pornhub.com", "bet365.com"]
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def spellings(draw) -> str:
    """A blocked host as a hostile client might write it."""
    host = draw(st.sampled_from(BLOCKED))
    chars = []
    for ch in host:
        how = draw(st.sampled_from(["plain", "upper", "pct"]))
        chars.append(ch.upper() if how == "upper" else quote(ch, safe="") if how == "pct" and ch != "." else
                     f"%{ord(ch):02x}" if how == "pct" else ch)
    text = "".join(chars)
    if draw(st.booleans()):
        text += "." * draw(st.integers(1, 2))
    if draw(st.booleans()):  # a control character, NUL or space inside the name, and maybe a tail after it
        # Inside, not at the edges: leading and trailing white space is stripped,
        # as servers strip it, and "\twww.bet365.com.x" then names another host.
        junk = draw(st.sampled_from(["\x00", "%00", "\t", "\x7f", "%0a", " ", "\x1b"]))
        at = draw(st.integers(1, len(text) - 1))
        text = text[:at] + junk + text[at:] + draw(st.sampled_from(["", ".allowed.test", "x"]))
    return text


@SETTINGS
@given(spellings())
def test_no_spelling_of_a_blocked_host_is_allowed(text: str):
    try:
        target = make_target("http", text, 80, "/")
    except (InvalidHost, InvalidURL):
        return  # refused as malformed: a 400 and an audit row in the proxy
    decision = ENGINE.decide(target, WHO, AT)
    assert decision.action == "block", (text, target.host, decision.rule)


@SETTINGS
@given(st.text(min_size=1, max_size=40))
def test_the_normaliser_refuses_or_returns_a_canonical_host(text: str):
    try:
        host = normalize_host(text)
    except InvalidHost:
        return
    assert host and not any(ord(c) < 33 or c in "\x7f%/\\@#?" for c in host), repr(host)
    assert normalize_host(host) == host  # idempotent
