"""WireGuard peers for devices that leave school (``schoolproxy devices``).

Each device is a peer with keys of its own, and the proxy runs one
WireGuard listener per peer, on a port of its own, accepting that peer's
key only.  That is what makes the key, not an address the device could
choose, name the device and its person in every audit row: mitmproxy's
WireGuard server does not tie a peer to its tunnel address, so two peers of
one listener could each claim the other's.  Revoking a peer closes its
listener; the proxy notices within a second, without a restart.

Everything is kept in ``<data>/wireguard/`` (0700): ``peers.json``, the
school's server key, and one mitmproxy configuration per peer (``NAME.conf``:
the server key and the device's private key, so its configuration and QR
code can be shown again), each 0600, readable by the proxy's account only.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

FOLDER = "wireguard"
BASE_PORT = 51820
NETWORK = ipaddress.ip_network("100.64.0.0/16")  # shared address space (RFC 6598): not a school LAN's
DNS = "10.0.0.53"  # mitmproxy's WireGuard mode answers this address itself, with the proxy's resolver
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class PeerError(ValueError):
    """A request the peers file cannot take (a name in use, no such device)."""


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    user: str
    port: int
    address: str
    public_key: str
    created: str
    revoked: str | None = None
    revoked_why: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def folder(data: Path) -> Path:
    path = data / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write a file only the proxy's account can read, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def genkey() -> str:
    raw = X25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def pubkey(private: str) -> str:
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private))
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)).decode()


def peers_file(data: Path) -> Path:
    return data / FOLDER / "peers.json"


def load_peers(data: Path) -> list[Peer]:
    path = peers_file(data)
    if not path.exists():
        return []
    return [Peer(**p) for p in json.loads(path.read_text(encoding="utf-8"))]


def save_peers(data: Path, peers: list[Peer]) -> None:
    folder(data)
    _write_private(peers_file(data), json.dumps([asdict(p) for p in peers], indent=2) + "\n")


def server_key(data: Path) -> str:
    """The school's WireGuard private key: made once, the same for every peer."""
    path = folder(data) / "server.key"
    if not path.exists():
        _write_private(path, genkey() + "\n")
    return path.read_text(encoding="utf-8").strip()


def conf_path(data: Path, name: str) -> Path:
    """mitmproxy's configuration for this peer's listener (its ``wireguard:PATH`` mode)."""
    return data / FOLDER / f"{name}.conf"


def client_key(data: Path, name: str) -> str:
    return str(json.loads(conf_path(data, name).read_text(encoding="utf-8"))["client_key"])


def add_peer(data: Path, name: str, user: str, now: datetime, base_port: int = BASE_PORT) -> Peer:
    """A new peer for the device ``name``, used by ``user``; its keys made and kept."""
    if not NAME.match(name):
        raise PeerError(f"device name {name!r}: use 1 to 40 lower-case letters, digits and hyphens")
    if not user.strip():
        raise PeerError("a device needs the person who uses it (--user)")
    peers = load_peers(data)
    if any(p.name == name for p in peers):
        raise PeerError(f"there is already a device called {name!r} (revoked ones keep their name)")
    port = max([p.port for p in peers], default=base_port - 1) + 1
    address = str(NETWORK.network_address + len(peers) + 2)
    key = genkey()
    server = server_key(data)
    _write_private(conf_path(data, name), json.dumps({"server_key": server, "client_key": key}, indent=2) + "\n")
    peer = Peer(name, user.strip(), port, address, pubkey(key), now.isoformat(timespec="seconds"))
    save_peers(data, [*peers, peer])
    return peer


def revoke_peer(data: Path, name: str, why: str, now: datetime) -> Peer:
    """Revoke ``name``: its listener closes; its private key is deleted."""
    peers = load_peers(data)
    found = next((p for p in peers if p.name == name), None)
    if found is None:
        raise PeerError(f"there is no device called {name!r}")
    if not found.active:
        raise PeerError(f"{name!r} was revoked already, at {found.revoked}")
    done = replace(found, revoked=now.isoformat(timespec="seconds"), revoked_why=why)
    save_peers(data, [done if p.name == name else p for p in peers])
    conf_path(data, name).unlink(missing_ok=True)
    return done


def client_config(data: Path, peer: Peer, endpoint: str, routes: str = "all") -> str:
    """The device's WireGuard configuration (``wg-quick`` format, as every
    WireGuard app and MDM takes it).  ``routes``: ``all`` sends everything
    through the school; ``web`` only the public internet's addresses, so the
    device still reaches its own home network directly."""
    allowed = "0.0.0.0/0, ::/0" if routes == "all" else PUBLIC_ROUTES
    return "\n".join([
        "[Interface]",
        f"# {peer.name} ({peer.user}): the school's web filter, off site",
        f"PrivateKey = {client_key(data, peer.name)}",
        f"Address = {peer.address}/32",
        f"DNS = {DNS}",
        "",
        "[Peer]",
        f"PublicKey = {pubkey(server_key(data))}",
        f"AllowedIPs = {allowed}",
        f"Endpoint = {endpoint}:{peer.port}",
        "PersistentKeepalive = 25",
        "",
    ])


LOCAL_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")


def _public_routes() -> str:
    """Every IPv4 address but the private, link-local, loopback and multicast
    ranges, the tunnel's DNS, and IPv6's global unicast: a device keeps its
    home printer."""
    nets: list[ipaddress.IPv4Network] = [ipaddress.IPv4Network("0.0.0.0/0")]
    for text in LOCAL_NETWORKS:
        local = ipaddress.IPv4Network(text)
        nets = [piece for n in nets for piece in (n.address_exclude(local) if local.subnet_of(n) else [n])]
    return ", ".join(str(n) for n in sorted(nets)) + f", {DNS}/32, 2000::/3"


PUBLIC_ROUTES = _public_routes()
