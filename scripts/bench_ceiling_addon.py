"""Benchmark-only mitmproxy addon: mitmdump with everything schoolproxy does
to mitmproxy's transport and nothing of the filter: ``SO_REUSEPORT`` (so one
process a core shares a port, as ``--workers auto``), the indexed dispatch,
the fast paths, a few idle server connections a client, the name cache.

``bench_peers.py --ceiling`` runs one a core: the most requests a second any
filter built on mitmproxy could pass on this machine, so that the gap to a
peer can be split into what the filter costs and what mitmproxy costs."""

import asyncio

from mitmproxy import ctx

from proxy_addon.proxy import fastpaths, resolver, serverconns
from proxy_addon.proxy.dispatch import HookIndex
from proxy_addon.proxy.workers import listen_with_reuse_port

listen_with_reuse_port()
fastpaths.install()


class Ceiling:
    def load(self, loader):
        HookIndex.adopt(ctx.master.addons)
        serverconns.install()

    def running(self):
        resolver.install(asyncio.get_running_loop())


addons = [Ceiling()]
