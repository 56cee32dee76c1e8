"""Pointing devices at the proxy: the rules section ``pacrules``, from which the
proxy serves a proxy auto-configuration file at ``/proxy.pac`` and
``/wpad.dat`` on its own listening port (``proxy.pac``), for Group Policy,
MDM or WPAD instead of configuring each device by hand.

    pac:
      proxies: [proxy1.school.example:8080, proxy2.school.example:8080]  # tried in order (failover)
      direct: [10.0.0.0/8, 192.168.0.0/16, .school.local, intranet.school.example]

``proxies`` defaults to the address the PAC file was fetched from.  ``direct``
lists what bypasses the proxy: networks (CIDR), a domain and its subdomains
(``school.local`` or ``.school.local``), single hosts; plain host names
(no dot) always go direct.  Nothing else ever goes direct: when every proxy is
down the browser shows an error rather than an unfiltered page.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..urls.normalize import InvalidHost, normalize_host
from .yamlsource import YMap

if TYPE_CHECKING:
    from .builder import Builder


@dataclass(frozen=True, slots=True)
class PacRules:
    proxies: tuple[str, ...] = ()  # host:port; empty: the address the file was fetched from
    networks: tuple[ipaddress.IPv4Network, ...] = ()
    domains: tuple[str, ...] = ()  # each covers its subdomains


def parse(b: Builder, value: Any, doc: YMap) -> None:
    r = b.r
    m = r.section(value, doc, "pac", ("proxies", "direct"))
    if m is None:
        return
    proxies = []
    for text, line in r.texts(m, "proxies"):
        host, _, port = text.rpartition(":")
        try:
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidHost("expected host:port")
            proxies.append(f"{normalize_host(host.strip('[]'))}:{int(port)}")
        except InvalidHost as e:
            r.problem(m, line, f"bad proxy address {text!r}: {e}")
    networks, domains = [], []
    for text, line in r.texts(m, "direct"):
        if "/" in text or text.replace(".", "").isdigit():
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError as e:
                r.problem(m, line, f"bad network {text!r}: {e}")
                continue
            if net.version != 4:
                r.problem(m, line, f"{text!r}: PAC files can test IPv4 networks only (isInNet)")
                continue
            networks.append(net)
            continue
        try:
            domains.append(normalize_host(text.lstrip(".")))
        except InvalidHost as e:
            r.problem(m, line, f"bad host or domain {text!r}: {e}")
    b.sections.pac = PacRules(tuple(proxies), tuple(networks), tuple(domains))
