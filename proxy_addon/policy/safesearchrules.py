"""Safe search, enforced (UK schools' filters are expected to; a member of staff
must not be able to turn it off by editing a URL or a cookie).

The rules section is read here; the two mechanisms are pure plans computed
in ``classify.safesearch`` and applied by the proxy:

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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .model import Audience
from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder

ENGINES = ("google", "bing", "duckduckgo", "yahoo", "youtube")
YOUTUBE_LEVELS = ("strict", "moderate", "off")


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


def parse(b: Builder, value: Any, doc: YMap) -> None:
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
                b.pending_audiences.append((Audience(groups=frozenset({str(g)})), gm))
    b.sections.safe_search = SafeSearchRules(frozenset(engines), youtube, tuple(groups))

