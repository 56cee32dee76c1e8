"""Who is making a request.

The proxy-auth user name when proxy authentication is on; otherwise the
client address mapped through the rules' ``devices`` table (longest prefix
wins, so one PC can be named inside a named room); otherwise the address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from ..policy.config import Config
from ..urls.normalize import HOST_MEMO


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    groups: frozenset[str]
    client_ip: str
    via: str  # "proxyauth" | "device" | "ip" | "wireguard"
    device: str | None = None  # the device's name when how it connected names it (a WireGuard peer's key)


@lru_cache(maxsize=HOST_MEMO)
def canonical_ip(address: str) -> str:
    """``::ffff:10.0.0.5`` -> ``10.0.0.5``; anything unparsable unchanged."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def identify(config: Config, client_ip: str, auth_user: str | None = None) -> Identity:
    ip_text = canonical_ip(client_ip)
    if auth_user:
        return Identity(auth_user, config.groups_of(auth_user), ip_text, "proxyauth")
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        ip = None
    best = None
    if ip is not None:
        for device in config.devices:
            if device.user and ip.version == device.network.version and ip in device.network:
                if best is None or device.network.prefixlen > best.network.prefixlen:
                    best = device
    if best is not None:
        return Identity(best.user, config.groups_of(best.user), ip_text, "device")
    return Identity(ip_text, config.groups_of(ip_text), ip_text, "ip")
