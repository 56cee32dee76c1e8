"""Test-only mitmproxy addon: send upstream connections to local origins.

Loaded with ``-s`` next to the product addon.  ``route_local`` maps host
names to ports on 127.0.0.1 (``--set route_local=site.test=8001``); any other
host that is not already a loopback address is refused, so no test can
reach the internet even by mistake.  Host headers and SNI are left alone.
"""

from collections.abc import Sequence

from mitmproxy import ctx


class RouteLocal:
    def load(self, loader):
        loader.add_option("route_local", Sequence[str], [], "host=port pairs routed to 127.0.0.1")

    def server_connect(self, data):
        routes = dict(item.split("=", 1) for item in ctx.options.route_local)
        host, port = data.server.address
        if host in routes:
            data.server.address = ("127.0.0.1", int(routes[host]))
        elif host not in ("127.0.0.1", "::1", "localhost"):
            data.server.error = f"test harness: {host} is not a local origin"


addons = [RouteLocal()]
