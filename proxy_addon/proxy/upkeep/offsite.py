"""Devices off site, through WireGuard: one mitmproxy WireGuard listener per
enrolled device (``enrol.wgpeers``), each accepting that device's key only,
so the listener a connection came in on names the device and its person.

The peers file is looked at every second: a device added gets its listener,
a revoked one loses it (its port closes, and its tunnels with it), without a
restart.  mitmproxy starts and stops listeners itself when its ``mode``
option changes; the other modes (regular, transparent) are left as they are.
Only one process of ``--workers`` runs these (UDP ports cannot be shared).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from mitmproxy import ctx

from ...enrol.wgpeers import conf_path, load_peers, peers_file
from ..flowstate import Runtime

log = logging.getLogger(__name__)
WIREGUARD = "wireguard"


class OffSite:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stamp: tuple[int, int] | None = None

    async def run(self) -> None:
        # mitmproxy logs a WireGuard listener's client configuration, private key and all, at start
        logging.getLogger("mitmproxy.proxy.mode_servers").setLevel(logging.WARNING)
        while True:
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the listeners in place stay; tried again in a second
                log.exception("schoolproxy: could not read the WireGuard peers")
            await asyncio.sleep(1.0)

    def sync(self) -> None:
        data = self.rt.data
        if data is None:
            return
        path = peers_file(data)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self.apply(data)

    def apply(self, data: Path) -> None:
        active = [p for p in load_peers(data) if p.active and conf_path(data, p.name).exists()]
        self.rt.offsite = {p.port: (p.name, p.user) for p in active}
        host = ctx.options.listen_host
        listeners = [f"{WIREGUARD}:{conf_path(data, p.name)}@{f'{host}:' if host else ''}{p.port}" for p in active]
        modes = [m for m in ctx.options.mode if not m.startswith(WIREGUARD)] + listeners
        if modes != list(ctx.options.mode):
            ctx.options.update(mode=modes)
            log.info("schoolproxy: WireGuard: %d device(s) can connect", len(active))
