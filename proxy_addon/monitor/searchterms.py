"""What people search for, from the search engines' URLs (UK schools are
expected to keep filtering logs that show search terms, and to act on
safeguarding terms).  Needs the URL: plain HTTP, or HTTPS with interception.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

_GOOGLE = re.compile(r"(?:www\.)?google\.(?:[a-z]{2,3}|co\.[a-z]{2}|com\.[a-z]{2})\Z")
# host test, path test, query parameter
_ENGINES = (
    ("google", lambda h: bool(_GOOGLE.match(h)) or h == "forcesafesearch.google.com", ("/search",), "q"),
    ("bing", lambda h: h in ("www.bing.com", "bing.com", "strict.bing.com"), ("/search", "/images/search", "/videos/search"), "q"),  # noqa: E501 - one row of a table
    ("duckduckgo", lambda h: h in ("duckduckgo.com", "www.duckduckgo.com", "html.duckduckgo.com", "safe.duckduckgo.com"), ("/", "/html", "/html/"), "q"),  # noqa: E501 - one row of a table
    ("yahoo", lambda h: h == "search.yahoo.com" or h.endswith(".search.yahoo.com"), ("/search",), "p"),
    ("youtube", lambda h: h in ("www.youtube.com", "m.youtube.com", "youtube.com", "restrict.youtube.com", "restrictmoderate.youtube.com"), ("/results",), "search_query"),  # noqa: E501 - one row of a table
    ("ecosia", lambda h: h in ("www.ecosia.org", "ecosia.org"), ("/search", "/images", "/videos"), "q"),
)


_HINTS = ("google", "bing", "duckduckgo", "yahoo", "youtube", "ecosia")


def is_search_host(host: str) -> bool:
    """A host whose requests may carry search terms worth recording."""
    return any(h in host for h in _HINTS) and any(host_ok(host) for _, host_ok, _, _ in _ENGINES)


def extract(host: str, path: str, query: str) -> str | None:
    """``"engine: terms"`` for a search request, else None."""
    if not query or not any(h in host for h in _HINTS):
        return None  # the common case, decided without parsing
    for name, host_ok, paths, param in _ENGINES:
        if host_ok(host) and (path in paths or path.startswith(paths)):
            values = parse_qs(query).get(param)
            if values and values[0].strip():
                return f"{name}: {' '.join(values[0].split())[:500]}"
    return None


def flagged(terms: str, watch: frozenset[str]) -> list[str]:
    """The safeguarding terms (words or phrases) that occur in a search."""
    text = " " + " ".join(re.findall(r"[\w']+", terms.lower())) + " "
    return sorted(t for t in watch if f" {t} " in text)
