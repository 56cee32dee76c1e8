"""What a tunnel carries, from its first bytes: the protocols people use to
get round a filter inside something it lets through (a CONNECT to port 443,
a WebSocket).  Pure; the proxy closes what this names.

Only the openings are read: an SSH banner (sent first by both ends), an
OpenVPN reset packet over TCP (a 2-byte length, then opcode 1, 7 or 10 in
the top five bits), a SOCKS greeting, a TLS ClientHello inside something
already decrypted (TLS in TLS, or in a WebSocket), an HTTP CONNECT inside
a WebSocket.
"""

from __future__ import annotations

_OPENVPN_RESETS = frozenset({1, 7, 10})  # P_CONTROL_HARD_RESET_CLIENT_V1, _V2, _V3


def openvpn_tcp(data: bytes) -> bool:
    if len(data) < 3:
        return False
    length = int.from_bytes(data[:2], "big")
    return 14 <= length <= 1600 and data[2] >> 3 in _OPENVPN_RESETS and data[2] & 7 == 0


def tls_record(data: bytes) -> bool:
    return len(data) >= 3 and data[0] == 0x16 and data[1] == 3 and data[2] <= 4


def socks(data: bytes) -> bool:
    return (len(data) >= 3 and data[0] == 5 and 0 < data[1] <= 9 and len(data) == 2 + data[1]) or (
        len(data) >= 9 and data[0] == 4 and data[1] in (1, 2))


def tunnel_protocol(data: bytes, tls_is_tunnel: bool = False) -> str | None:
    """The tunnelling protocol these first bytes open, or None."""
    if data.startswith(b"SSH-"):
        return "SSH"
    if openvpn_tcp(data):
        return "OpenVPN"
    if tls_is_tunnel and tls_record(data):
        return "TLS"
    if data.startswith(b"CONNECT "):
        return "HTTP CONNECT"
    if socks(data):
        return "SOCKS"
    return None


def describe(client: bytes, server: bytes, channel: str = "a tunnel (CONNECT)") -> str:
    """A tunnel refused for carrying neither TLS nor HTTP, as the row says
    it; ``channel``: what carried it (a redirected connection, UDP)."""
    found = tunnel_protocol(client) or tunnel_protocol(server)
    if found:
        return f"{found} inside {channel}"
    if not client and server:
        return f"a server that speaks first inside {channel}"
    return f"{channel} that carries neither TLS nor HTTP"
