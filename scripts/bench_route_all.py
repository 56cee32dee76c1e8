"""Benchmark-only mitmproxy addon: every request goes to one local origin, so
real host names can be requested without any network.

It retargets the request (not the server connection, as the tests' routing
addon does): mitmproxy reuses an upstream connection only when its address
matches the request's, so rewriting addresses in ``server_connect`` would open
a new upstream connection per request.  Loaded after the school addon, it does
not change what the filter sees."""

from mitmproxy import ctx


class RouteAll:
    def load(self, loader):
        loader.add_option("route_all_port", int, 0, "local origin port for every request")

    def requestheaders(self, flow):
        flow.request.data.host = "127.0.0.1"
        flow.request.data.port = ctx.options.route_all_port


addons = [RouteAll()]
