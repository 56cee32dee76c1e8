"""How a connection reached the proxy, and what that means for its names.

In regular mode a device chose the proxy: it says where it is going
(``CONNECT host:443``, ``GET http://host/``).  In transparent and WireGuard
mode it did not: its packets were redirected (by the gateway's nftables
rules, or out of a WireGuard tunnel), and mitmproxy knows only the address
they were sent to.  The name is in the request (the Host header) or the
handshake (the TLS SNI), and it is that name which is judged.

A name the device gives and an address it chose can disagree (``Host:
allowed.example`` sent to a blocked site's address).  So a redirected
connection goes to the name that was judged, resolved by the proxy, never to
the address the device chose: what is fetched is what was decided on.
"""

from __future__ import annotations

import socket
import time

from mitmproxy import connection, http
from mitmproxy.proxy.mode_specs import LocalMode, TransparentMode, TunMode, WireGuardMode

from ..urls.normalize import InvalidURL, split_authority

REDIRECTED = (TransparentMode, WireGuardMode, LocalMode, TunMode)


def redirected(client: connection.Client) -> bool:
    """The device did not choose the proxy: no CONNECT, names come from Host and SNI."""
    return isinstance(client.proxy_mode, REDIRECTED)


def mode_name(client: connection.Client) -> str:
    """``regular``, ``transparent``, ``wireguard``: how this connection arrived."""
    return client.proxy_mode.type_name


MINE_TTL = 60.0
clock = time.monotonic
_mine: dict[str, tuple[float, bool]] = {}


def this_machine(ip: str) -> bool:
    """Is ``ip`` an address of this machine?  (A redirected connection's
    socket names the address it was sent to, not the proxy's.)  Asked of the
    kernel once a minute per address (only a local address can be bound): a
    gateway whose address changes (DHCP) stops treating the old one as its own."""
    now = clock()
    kept = _mine.get(ip)
    if kept is not None and kept[0] > now:
        return kept[1]
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
        mine = True
    except OSError:
        mine = False
    if len(_mine) >= 256:
        _mine.clear()
    _mine[ip] = (now + MINE_TTL, mine)
    return mine


def aim_at_named_host(request: http.Request) -> None:
    """A redirected request goes to the host its Host header names, on the
    port it was sent to.  A request with no Host, or an unparsable one, keeps
    its address: it is judged as a bare address."""
    header = request.host_header
    if not header:
        return
    try:
        host, _port = split_authority(header)
    except InvalidURL:
        return
    host = host.strip("[]")
    if host:
        request.data.host = host  # the Host header itself is left exactly as the device sent it
