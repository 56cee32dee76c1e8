"""Safe search, enforced (UK schools' filters are expected to; a member of staff
must not be able to turn it off by editing a URL or a cookie).

Two mechanisms, both computed here as pure plans the addon applies:

* Rewriting requests it can see (plain HTTP, or HTTPS with ``tls: intercept``):
  Google ``safe=active``, Bing ``adlt=strict``, DuckDuckGo ``kp=1``, Yahoo
  ``vm=r``, and the ``YouTube-Restrict`` header (``Strict`` or ``Moderate``).
  Whatever the user put in the URL is overwritten.
* Sending the engines' own tunnels to their forced-safe front ends
  (``forcesafesearch.google.com``, ``strict.bing.com``,
  ``safe.duckduckgo.com``, ``restrict.youtube.com``), which enforce safe
  search on the server whatever the request or its cookies say.  This is what
  the engines document as a DNS CNAME; the proxy does it by changing where a
  CONNECT tunnel goes (the TLS SNI is unchanged), so it works in
  ``tls: hostname`` mode too, without decryption.

Rules section::

    safe_search:
      engines: [google, bing, duckduckgo, yahoo, youtube]
      youtube: strict                 # strict | moderate | off
      youtube_groups: {media-studies: moderate}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .config import YMap, register_section

ENGINES = ("google", "bing", "duckduckgo", "yahoo", "youtube")
YOUTUBE_LEVELS = ("strict", "moderate", "off")
_GOOGLE = re.compile(r"(?:www\.)?google\.(?:[a-z]{2,3}|co\.[a-z]{2}|com\.[a-z]{2})\Z")
_GOOGLE_SEARCH_PATHS = ("/search", "/webhp", "/complete/search", "/images", "/imghp", "/")
_YOUTUBE = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                      "youtube.googleapis.com", "www.youtube-nocookie.com", "music.youtube.com"})
_YOUTUBE_FRONT = {"strict": "restrict.youtube.com", "moderate": "restrictmoderate.youtube.com"}


@dataclass(frozen=True, slots=True)
class SafeSearchRules:
    engines: frozenset[str] = frozenset(ENGINES)
    youtube: str = "strict"
    youtube_groups: tuple[tuple[str, str], ...] = ()

    def youtube_level(self, groups: frozenset[str]) -> str:
        """The most relaxed level any of the person's groups is given."""
        level = self.youtube
        for group, lvl in self.youtube_groups:
            if group in groups and YOUTUBE_LEVELS.index(lvl) > YOUTUBE_LEVELS.index(level):
                level = lvl
        return level


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


def _parse(b: Any, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "safe_search", ("engines", "youtube", "youtube_groups"))
    if m is None:
        return
    engines = [v for v, _ in r.texts(m, "engines")] if "engines" in m else list(ENGINES)
    for name, line in r.texts(m, "engines"):
        if name not in ENGINES:
            r.problem(m, line, f"unknown search engine {name!r} (expected one of: {', '.join(ENGINES)})")
    youtube = r.choice(m, "youtube", YOUTUBE_LEVELS, "strict") or "strict"
    groups: list[tuple[str, str]] = []
    if "youtube_groups" in m:
        gm = r.mapping(m["youtube_groups"], m, m.line_of("youtube_groups"), "'youtube_groups'")
        for g in gm or {}:
            assert gm is not None
            lvl = r.choice(gm, g, YOUTUBE_LEVELS)
            if lvl:
                groups.append((str(g), lvl))
                b.pending_audiences.append((_audience(str(g)), gm))
    b.sections["safe_search"] = SafeSearchRules(frozenset(engines), youtube, tuple(groups))


def _audience(group: str) -> Any:
    from .config import Audience

    return Audience(groups=frozenset({group}))


register_section("safe_search", _parse)
