"""Test-only mitmproxy addon: send upstream traffic to local origins.

Loaded with ``-s`` after the product addon.  ``route_local`` maps host names
to ports on 127.0.0.1 (``--set route_local=site.test=8001``).  HTTP requests
are retargeted in ``requestheaders`` (after the filter has judged them), so
mitmproxy can reuse upstream connections; tunnels that are not decrypted are
redirected in ``server_connect``.  Any other host that is not a loopback
address is refused, so no test can reach the internet even by mistake.
Host headers and SNI are left alone.
"""

from collections.abc import Sequence

from mitmproxy import ctx

LOCAL = ("127.0.0.1", "::1", "localhost")


class RouteLocal:
    def load(self, loader):
        loader.add_option("route_local", Sequence[str], [], "host=port pairs routed to 127.0.0.1")

    def _routes(self):
        return dict(item.split("=", 1) for item in ctx.options.route_local)

    def requestheaders(self, flow):
        if flow.response is not None:
            return
        port = self._routes().get(flow.request.host)
        if port is not None:
            flow.request.data.host = "127.0.0.1"
            flow.request.data.port = int(port)

    def server_connect(self, data):
        host, _ = data.server.address
        port = self._routes().get(host)
        if port is not None:
            data.server.address = ("127.0.0.1", int(port))
        elif host not in LOCAL:
            data.server.error = f"test harness: {host} is not a local origin"


addons = [RouteLocal()]
