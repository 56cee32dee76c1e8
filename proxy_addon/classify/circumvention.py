"""The checks behind the ``circumvention`` rules (see ``policy.circumventionrules``):
DNS over HTTPS by path and content type, and browsing by bare IP address.
Pure; the engine and the proxy share them."""

from __future__ import annotations

import ipaddress

from ..policy.circumventionrules import CLAUSE, DOH_PATHS, DOH_TYPES, POLICY_TEXT, CircumventionRules
from .decision import Decision


def bare_ip_refused(rules: CircumventionRules, host: str) -> bool:
    if rules.bare_ip == "allow":
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return rules.bare_ip == "block" or ip.is_global


def doh_path(rules: CircumventionRules, path: str) -> bool:
    """``/dns-query`` and ``/resolve`` as resolvers accept them: in any case,
    and with anything after a ``/`` or ``;`` (``/DNS-QUERY``, ``/dns-query/``,
    ``/dns-query;x``, ``/Resolve``)."""
    if not rules.doh or len(path) < 8:
        return False
    p = path.lower()
    return any(p == d or p.startswith((d + "/", d + ";")) for d in DOH_PATHS)


def doh_content(rules: CircumventionRules, content_type: str, accept: str) -> bool:
    if not rules.doh:
        return False
    return any(t in content_type.lower() or t in accept.lower() for t in DOH_TYPES)


def circumvention_decision(kind: str, why: str, categories: tuple[str, ...] = ()) -> Decision:
    """A block for an attempt to get round the filter (see ``circumvention``)."""
    return Decision("block", None, categories, f"circumvention:{kind}", CLAUSE, None, None,
                    f"circumvention: {why}", True, POLICY_TEXT, "Getting round the school's filter")
