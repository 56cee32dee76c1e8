"""Requests addressed to the proxy itself rather than through it (plain
HTTP in origin form, outside any tunnel): ``/proxy.pac`` and ``/wpad.dat``
get the proxy auto-configuration file built from the rules' ``pac`` section
(``policy.pacrules``); the filter's own pages (``/metrics``, ``/healthz``) are
answered by the callback it passes; anything else a short 404 page, never
forwarded (it would come straight back)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from mitmproxy import http

from ..classify.identity import canonical_ip
from ..policy.pacrules import PacRules
from .modes import redirected, this_machine

PATHS = ("/proxy.pac", "/wpad.dat")
PAC_TYPE = "application/x-ns-proxy-autoconfig"


OWN_NAMES = frozenset({"localhost", socket.gethostname().lower()})  # not getfqdn(): a DNS query at start-up;
# the names clients use for the proxy are the rules' pac.proxies


def addressed_to_proxy(flow: http.HTTPFlow, rules: PacRules | None) -> bool:
    """A plain-HTTP request whose host and port are the proxy's own: its
    listening address, this machine's names, or a proxy the PAC rules name.
    (mitmproxy 11 turns a proxied absolute-form request into the same shape
    as one addressed to the proxy, so the address is what tells them apart.)
    A redirected request (transparent mode) was sent to port 80 of one of
    this machine's addresses."""
    req, sock = flow.request, flow.client_conn.sockname
    if req.scheme != "http" or req.method == "CONNECT" or not sock:
        return False
    if redirected(flow.client_conn):  # its socket names the address it was sent to
        return req.port == 80 and this_machine(req.host.strip("[]"))
    if req.port != sock[1]:
        return False
    host = req.host.lower().strip("[]")
    if host == canonical_ip(str(sock[0])) or host in OWN_NAMES:
        return True
    return rules is not None and any(p.rpartition(":")[0] == host for p in rules.proxies)


def pac_text(rules: PacRules | None, fetched_from: str) -> str:
    """The PAC file: the school's local names and networks direct, everything
    else through the proxies in order (no DIRECT fallback: fail closed)."""
    rules = rules or PacRules()
    proxies = rules.proxies or (fetched_from,)
    lines = ["function FindProxyForURL(url, host) {",
             "  if (isPlainHostName(host)) return \"DIRECT\";"]
    for d in rules.domains:
        lines.append(f"  if (host == {json.dumps(d)} || dnsDomainIs(host, {json.dumps('.' + d)})) return \"DIRECT\";")
    for net in rules.networks:
        lines.append(f"  if (isInNet(host, {json.dumps(str(net.network_address))}, {json.dumps(str(net.netmask))})) "
                     "return \"DIRECT\";")
    lines += [f"  return {json.dumps('; '.join(f'PROXY {p}' for p in proxies))};", "}", ""]
    return "\n".join(lines)


def answer(flow: http.HTTPFlow, rules: PacRules | None,
           own: Callable[[str], tuple[int, bytes, str] | None] | None = None) -> None:
    req = flow.request
    page = own(req.path.split("?", 1)[0]) if own is not None and req.method in ("GET", "HEAD") else None
    if page is not None:
        status, body, ctype = page
        flow.response = http.Response.make(status, body, {"Content-Type": ctype, "Cache-Control": "no-store"})
        return
    if req.path.split("?", 1)[0] in PATHS and req.method in ("GET", "HEAD"):
        fetched_from = req.host_header or f"{req.host}:{req.port}"
        flow.response = http.Response.make(200, pac_text(rules, fetched_from).encode(),
                                           {"Content-Type": PAC_TYPE, "Cache-Control": "max-age=300"})
        return
    flow.response = http.Response.make(
        404, b"This is the school's web filter. Set it as your browser's proxy, or use its proxy.pac.\n",
        {"Content-Type": "text/plain; charset=utf-8"})
