"""A device's name for the audit log (the DfE standards ask filtering logs to
identify the "device name or ID" besides the address and the person): from
the rules' ``devices`` table (``name:``), else a DHCP leases file (dnsmasq or
ISC dhcpd format, ``device_names.leases``), else reverse DNS, in that order.

Never blocks a request: the table and the leases (re-read when the file
changes, looked at no more than every few seconds) are in memory; a reverse
lookup runs on a small thread pool and its answer (a name or none) is cached,
so an address's first rows may lack the name that later ones have.  Every
cache is bounded.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..policy.config import Config
from ..policy.model import Device, DeviceNaming
from ..urls.normalize import HOST_MEMO

CACHE = HOST_MEMO
RECHECK_S = 5.0
DNS_TTL_S = 3600.0
_ISC_LEASE = re.compile(r"lease\s+([0-9a-fA-F:.]+)\s*\{(.*?)\}", re.S)
_ISC_NAME = re.compile(r'client-hostname\s+"([^"]*)"\s*;')


def read_leases(path: Path) -> dict[str, str]:
    """Address -> host name from a dnsmasq leases file (``expiry mac ip name
    client-id`` lines; ``*`` for no name) or an ISC dhcpd one (``lease IP {
    ... client-hostname "name"; }`` blocks; the last block for an address wins)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    out: dict[str, str] = {}
    if "lease " in text and "{" in text:
        for ip, body in _ISC_LEASE.findall(text):
            m = _ISC_NAME.search(body)
            if m and m.group(1):
                out[ip] = m.group(1)[:255]
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3] != "*":
            out[parts[2]] = parts[3][:255]
    return out


class DeviceNames:
    def __init__(self) -> None:
        self._config: Config | None = None
        self._named: tuple[Device, ...] = ()
        self._naming = DeviceNaming()
        self._leases: dict[str, str] = {}
        self._lease_stamps: dict[Path, tuple[int, int]] = {}
        self._checked = 0.0
        self._dns: dict[str, tuple[str | None, float]] = {}
        self._asked: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="schoolproxy-rdns")
        self._lock = threading.Lock()

    def name(self, config: Config, ip: str) -> str | None:
        """The device's name, or None (not known, or not known yet)."""
        if config is not self._config:
            self._config = config
            self._named = tuple(sorted((d for d in config.devices if d.name), key=lambda d: -d.network.prefixlen))
            self._naming = config.sections.device_names or DeviceNaming()
        naming = self._naming
        found = self._from_table(ip)
        if found is None and naming.leases:
            self._refresh_leases(naming.leases)
            found = self._leases.get(ip)
        if found is None and naming.reverse_dns:
            found = self._from_dns(ip)
        return found

    def _from_table(self, ip: str) -> str | None:
        if not self._named:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for d in self._named:
            if addr.version == d.network.version and addr in d.network:
                return d.name
        return None

    def _refresh_leases(self, paths: tuple[Path, ...]) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_S and self._lease_stamps:
            return
        self._checked = now
        stamps = {}
        for p in paths:
            try:
                st = p.stat()
                stamps[p] = (st.st_mtime_ns, st.st_size)
            except OSError:
                continue
        if stamps == self._lease_stamps:
            return
        merged: dict[str, str] = {}
        for p in stamps:
            try:
                merged.update(read_leases(p))
            except OSError:
                continue
        self._leases, self._lease_stamps = merged, stamps

    def _from_dns(self, ip: str) -> str | None:
        hit = self._dns.get(ip)
        if hit is not None and time.monotonic() - hit[1] < DNS_TTL_S:
            return hit[0]
        with self._lock:
            if ip in self._asked:
                return hit[0] if hit else None
            self._asked.add(ip)
        self._pool.submit(self._resolve, ip)
        return hit[0] if hit else None

    def _resolve(self, ip: str) -> None:
        try:
            name: str | None = socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)[0][:255]
        except (OSError, UnicodeError):
            name = None
        with self._lock:
            if len(self._dns) >= CACHE:
                self._dns.clear()
            self._dns[ip] = (name, time.monotonic())
            self._asked.discard(ip)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
