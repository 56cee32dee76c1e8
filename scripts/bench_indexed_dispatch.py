"""Benchmark-only mitmproxy addon: bare mitmdump with schoolproxy's event
dispatch (``proxy_addon.proxy.dispatch.HookIndex``) and nothing else.

``bench_proxy.py`` runs it as a second reference beside stock mitmdump, so
that the filter's own cost per request is measured against a proxy that
dispatches events the same way, not hidden by the dispatch saving."""

from mitmproxy import ctx

from proxy_addon.proxy.dispatch import HookIndex


class IndexedDispatch:
    def load(self, loader):
        HookIndex.adopt(ctx.master.addons)


addons = [IndexedDispatch()]
