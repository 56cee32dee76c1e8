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
  and CONNECT host disagree is judged on each name and blocked if any is.

Every attempt is an audit row with action ``block``, a rule
``circumvention:<kind>`` and a reason beginning ``circumvention:``.

Rules section::

    circumvention:
      connect_ports: [443]
      bare_ip: block_public        # allow | block_public | block
      doh: block                   # block | allow
      non_tls_tunnels: block       # block | allow
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .yamlsource import YMap

BARE_IP = ("allow", "block_public", "block")
DOH_PATHS = frozenset({"/dns-query", "/resolve"})
DOH_TYPES = ("application/dns-message", "application/dns-json")
CLAUSE = "6.3.1"
POLICY_TEXT = ("staff members are not permitted to alter or tamper with their PC Internet settings for the "
               "purpose of bypassing or attempting to bypass filtering and monitoring procedures unless they "
               "have been given express permission to do so by the Headteacher")


@dataclass(frozen=True, slots=True)
class CircumventionRules:
    connect_ports: frozenset[int] = frozenset({443})
    bare_ip: str = "block_public"
    doh: bool = True
    non_tls_tunnels: bool = True


def parse(b: Any, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "circumvention", ("connect_ports", "bare_ip", "doh", "non_tls_tunnels"))
    if m is None:
        return
    ports = set()
    for text, line in r.texts(m, "connect_ports"):
        if not text.isdigit() or not 0 < int(text) < 65536:
            r.problem(m, line, f"bad port {text!r}")
        else:
            ports.add(int(text))
    b.sections["circumvention"] = CircumventionRules(
        frozenset(ports) if "connect_ports" in m else frozenset({443}),
        r.choice(m, "bare_ip", BARE_IP, "block_public") or "block_public",
        (r.choice(m, "doh", ("block", "allow"), "block") or "block") == "block",
        (r.choice(m, "non_tls_tunnels", ("block", "allow"), "block") or "block") == "block",
    )

