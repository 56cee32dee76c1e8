"""Web proxies and unblockers: a request judged by the site it fetches for
someone (the address carried inside it, ``urls.embedded``) and by the shape
of the relay's own addresses and headers (``circumvention.web_proxies``).

Translation, cache and archive services are relays too: whatever allow the
relaying host has, a blocked target is blocked.  Pure, like the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from ..policy.circumventionrules import CircumventionRules, WebProxyShape
from ..urls.embedded import embedded_urls
from ..urls.normalize import InvalidHost, InvalidURL, Target, normalize_url
from .circumvention import circumvention_decision
from .decision import Decision
from .engine import Engine
from .identity import Identity

_MAY_CARRY = re.compile(r"(?i)https?(?::|%3a)|ahr0c|hvtrs|uggc|cache(?::|%3a)|\.translate\.goog")
"""What an address carried in any of the codecs starts with ("http" plain,
base64, in Ultraviolet's XOR codec, rot13): requests without it are not decoded."""


def shape(rules: CircumventionRules, target: Target) -> WebProxyShape | None:
    """The web-proxy address pattern this request matches, or None."""
    if rules.web_proxy_any is None:
        return None
    text = f"{target.path}?{target.query}" if target.query else target.path
    if rules.web_proxy_any.search(text) is None:
        return None
    for s in rules.web_proxy_urls:
        if s.search(text):
            return s
    return None


def header_shape(rules: CircumventionRules, names: Iterable[str]) -> WebProxyShape | None:
    """The web-proxy header pattern one of these header names matches, or None."""
    shapes = rules.web_proxy_headers
    for name in names:  # almost always none: a request or response seldom has an X- header of a relay
        for s in shapes:
            if s.search(name):
                return s
    return None


def shape_decision(s: WebProxyShape, what: str) -> Decision:
    return circumvention_decision("web-proxy", f"a web proxy or unblocker ({what} matches {s.pattern.pattern!r}, "
                                               f"{s.origin})", ("anonymizers",))


def relayed_verdict(engine: Engine, target: Target, who: Identity, now: datetime) -> Decision | None:
    """A block for a request that relays a blocked site (an unblocker, a
    translation proxy, an archive or cache), or for the shape of a known web
    proxy; None if neither."""
    found = shape(engine.circumvention, target)
    if found is not None:
        return shape_decision(found, "its address")
    host = target.host
    if not _MAY_CARRY.search(target.path) and not _MAY_CARRY.search(target.query) and not host.endswith(
            ".translate.goog"):
        return None
    for url in embedded_urls(host, target.path, target.query):
        try:
            inner = normalize_url(url)
        except (InvalidURL, InvalidHost):
            continue
        if inner.host == host:
            continue
        d = engine.decide(inner, who, now)
        if d.action == "block":
            return replace(d, rule="circumvention:web-proxy",
                           reason=f"circumvention: {host} relays {inner.host} (a web proxy, translation, cache or "
                                  f"archive service fetching it): {d.reason}")
    return None
