"""Transparent mode asks whether a request went to one of the gateway's own
addresses (then it is for the proxy: the PAC file, its pages).  A gateway
whose address changes must stop treating the old one as its own."""

from __future__ import annotations

import os

from proxy_addon.proxy import modes
from tests.support.netns import inside, need_namespaces, sh


def test_an_address_the_machine_gave_up_stops_being_its_own_within_a_minute(monkeypatch):
    need_namespaces()
    ns = f"spmine{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", "10.99.0.1/32", "dev", "lo", ns=ns)
        now = [1000.0]
        monkeypatch.setattr(modes, "clock", lambda: now[0])
        assert inside(ns, lambda: modes.this_machine("10.99.0.1"))
        assert not inside(ns, lambda: modes.this_machine("10.99.0.2"))
        sh("ip", "addr", "del", "10.99.0.1/32", "dev", "lo", ns=ns)  # a new lease: the old address is gone
        assert inside(ns, lambda: modes.this_machine("10.99.0.1"))  # asked of the kernel at most once a minute
        now[0] += modes.MINE_TTL + 1
        assert not inside(ns, lambda: modes.this_machine("10.99.0.1"))
    finally:
        sh("ip", "netns", "del", ns, check=False)
