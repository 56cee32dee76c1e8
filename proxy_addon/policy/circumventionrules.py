"""The common ways round a filter, recognised (policy 6.3.1: staff must not
tamper with settings to bypass filtering without the Headteacher's express
permission).

Anonymizers, VPN and web-proxy sites are plain categories.  What needs more
than a category is the rules section read here; the checks themselves
are pure functions in ``classify.circumvention``:

* DNS over HTTPS by path and content type (``/dns-query``,
  ``application/dns-message``), on any host: a browser using DoH resolves
  round the school's DNS;
* browsing by bare IP address (every spelling the normaliser understands),
  allowed, refused for public addresses, or refused altogether;
* CONNECT to ports other than the allowed ones (443 by default), and
  non-TLS protocols tunnelled through CONNECT;
* domain fronting, judged in the addon: a request whose Host header, TLS SNI
  and CONNECT host disagree is judged on each name and blocked if any is;
* web proxies and unblockers by their shape (``web_proxies``: list files of
  URL and header patterns, ``lists/web-proxies.txt`` shipped and
  ``lists/school/web-proxies.txt`` the school's), and any address carried
  inside a request (``urls.embedded``) judged as the target it fetches;
* who is told: ``alerts``, the severity of an attempt.

Every attempt is an audit row with action ``block``, a rule
``circumvention:<kind>`` and a reason beginning ``circumvention:``.

Rules section::

    circumvention:
      connect_ports: [443]
      bare_ip: block_public        # allow | block_public | block
      doh: block                   # block | allow
      non_tls_tunnels: block       # block | allow
      web_proxies: [lists/web-proxies.txt, lists/school/web-proxies.txt]
      alerts:
        technician: true           # every attempt: the technician (monitoring.alerts.email.system_to)
        safeguarding_after: 3      # this many attempts by one person in a day: the safeguarding lead too (0: never)

A web-proxy file has one pattern a line, ``url REGEX`` (searched in the
request's path and query, case-insensitive) or ``header REGEX`` (matched
against each request or response header name); ``#`` starts a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import display_path
from .yamlsource import Problem, YMap

if TYPE_CHECKING:
    from .builder import Builder

BARE_IP = ("allow", "block_public", "block")
DOH_PATHS = frozenset({"/dns-query", "/resolve"})
DOH_TYPES = ("application/dns-message", "application/dns-json")
CLAUSE = "6.3.1"
POLICY_TEXT = ("staff members are not permitted to alter or tamper with their PC Internet settings for the "
               "purpose of bypassing or attempting to bypass filtering and monitoring procedures unless they "
               "have been given express permission to do so by the Headteacher")


DEFAULT_WEB_PROXY_FILES = ("lists/web-proxies.txt", "lists/school/web-proxies.txt")


@dataclass(frozen=True, slots=True)
class WebProxyShape:
    """One pattern of a web proxy's address or headers, and where it was written."""

    pattern: re.Pattern[str]
    origin: str  # FILE:LINE

    def search(self, text: str) -> bool:
        return self.pattern.search(text) is not None


@dataclass(frozen=True, slots=True)
class CircumventionRules:
    connect_ports: frozenset[int] = frozenset({443})
    bare_ip: str = "block_public"
    doh: bool = True
    non_tls_tunnels: bool = True
    web_proxy_urls: tuple[WebProxyShape, ...] = ()
    web_proxy_headers: tuple[WebProxyShape, ...] = ()
    web_proxy_any: re.Pattern[str] | None = None  # every url pattern in one: one search per request
    alert_technician: bool = True
    safeguarding_after: int = 3


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "circumvention", ("connect_ports", "bare_ip", "doh", "non_tls_tunnels",
                                                "web_proxies", "alerts"))
    if m is None:
        return
    ports = set()
    for text, line in r.texts(m, "connect_ports"):
        if not text.isdigit() or not 0 < int(text) < 65536:
            r.problem(m, line, f"bad port {text!r}")
        else:
            ports.add(int(text))
    b.sections.circumvention = CircumventionRules(
        frozenset(ports) if "connect_ports" in m else frozenset({443}),
        r.choice(m, "bare_ip", BARE_IP, "block_public") or "block_public",
        (r.choice(m, "doh", ("block", "allow"), "block") or "block") == "block",
        (r.choice(m, "non_tls_tunnels", ("block", "allow"), "block") or "block") == "block",
        *_web_proxies(b, m),
        *_alerts(r, m),
    )


def any_of(shapes: tuple[WebProxyShape, ...]) -> re.Pattern[str] | None:
    if not shapes:
        return None
    return re.compile("|".join(f"(?:{s.pattern.pattern})" for s in shapes), re.IGNORECASE)


def _web_proxies(b: Builder, m: YMap) -> tuple[tuple[WebProxyShape, ...], tuple[WebProxyShape, ...],
                                           re.Pattern[str] | None]:
    r = b.r
    files = r.texts(m, "web_proxies") if "web_proxies" in m else [(f, m.line) for f in DEFAULT_WEB_PROXY_FILES]
    urls: list[WebProxyShape] = []
    headers: list[WebProxyShape] = []
    for rel, line in files:
        path = Path(rel) if Path(rel).is_absolute() else b.root / rel
        if not path.exists():
            if "web_proxies" in m and "/school/" not in rel:
                r.problem(m, line, f"web-proxy file {rel} does not exist")
            continue
        b.list_files.append(path.resolve())
        read_web_proxies(path, urls, headers, b.problems)
    return tuple(urls), tuple(headers), any_of(tuple(urls))


def read_web_proxies(path: Path, urls: list[WebProxyShape], headers: list[WebProxyShape],
                     problems: list[Problem]) -> None:
    """Add a web-proxy file's patterns; a bad line is a FILE:LINE problem."""
    shown = display_path(path)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            kind, _, pattern = line.partition(" ")
            pattern = pattern.strip()
            if kind not in ("url", "header") or not pattern:
                problems.append(Problem(shown, n, "expected 'url REGEX' or 'header REGEX'"))
                continue
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as e:
                problems.append(Problem(shown, n, f"bad regular expression: {e}"))
                continue
            (urls if kind == "url" else headers).append(WebProxyShape(compiled, f"{shown}:{n}"))


def _alerts(r: Any, m: YMap) -> tuple[bool, int]:
    if "alerts" not in m:
        return True, 3
    a = r.mapping(m["alerts"], m, m.line_of("alerts"), "'circumvention.alerts'")
    if a is None:
        return True, 3
    r.keys(a, ("technician", "safeguarding_after"), (), "'circumvention.alerts'")
    after = r.number(a, "safeguarding_after", 3.0)
    technician = a.get("technician", True)
    if not isinstance(technician, bool):
        r.problem(a, a.line, "technician must be true or false")
        technician = True
    return technician, max(0, int(after if after is not None else 3))

