"""Safe-search plans (see ``policy.safesearchrules`` for the rules and why): what
to change in a request the proxy can see, and which forced-safe front end a
tunnel to a search engine should go to.  Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..policy.safesearchrules import SafeSearchRules

_GOOGLE = re.compile(r"(?:www\.)?google\.(?:[a-z]{2,3}|co\.[a-z]{2}|com\.[a-z]{2})\Z")
_GOOGLE_SEARCH_PATHS = ("/search", "/webhp", "/complete/search", "/images", "/imghp", "/")
_YOUTUBE = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                      "youtube.googleapis.com", "www.youtube-nocookie.com", "music.youtube.com"})
_YOUTUBE_FRONT = {"strict": "restrict.youtube.com", "moderate": "restrictmoderate.youtube.com"}


@dataclass(frozen=True, slots=True)
class Plan:
    """What to change in one request."""

    engine: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


_HINTS = ("google", "bing", "duckduckgo", "yahoo", "youtube")


def request_plan(rules: SafeSearchRules, host: str, path: str, groups: frozenset[str]) -> Plan | None:
    """Query parameters and headers that enforce safe search on this request."""
    if not any(h in host for h in _HINTS):
        return None  # the common case, decided without a regular expression
    e = rules.engines
    if "google" in e and _GOOGLE.match(host) and (path in _GOOGLE_SEARCH_PATHS or path.startswith("/search")):
        return Plan("google", {"safe": "active"})
    if "bing" in e and host in ("www.bing.com", "bing.com", "cn.bing.com") and path.startswith(("/search", "/images", "/videos")):
        return Plan("bing", {"adlt": "strict"})
    if "duckduckgo" in e and host in ("duckduckgo.com", "www.duckduckgo.com", "html.duckduckgo.com", "links.duckduckgo.com"):
        return Plan("duckduckgo", {"kp": "1"})
    if "yahoo" in e and (host == "search.yahoo.com" or host.endswith(".search.yahoo.com")):
        return Plan("yahoo", {"vm": "r"})
    if "youtube" in e and host in _YOUTUBE:
        level = rules.youtube_level(groups)
        if level != "off":
            return Plan("youtube", headers={"YouTube-Restrict": level.capitalize()})
    return None


def tunnel_front(rules: SafeSearchRules, host: str, groups: frozenset[str]) -> str | None:
    """The forced-safe front end a tunnel to ``host`` should go to, if any."""
    e = rules.engines
    if "google" in e and _GOOGLE.match(host) and host.startswith("www.google."):
        return "forcesafesearch.google.com"
    if "bing" in e and host in ("www.bing.com", "bing.com"):
        return "strict.bing.com"
    if "duckduckgo" in e and host in ("duckduckgo.com", "www.duckduckgo.com"):
        return "safe.duckduckgo.com"
    if "youtube" in e and host in _YOUTUBE and host not in ("youtubei.googleapis.com", "youtube.googleapis.com"):
        return _YOUTUBE_FRONT.get(rules.youtube_level(groups))
    return None
