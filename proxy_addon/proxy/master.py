"""``schoolproxy run``: mitmdump with the filter built in.

mitmproxy offers an addon two ways in: as a script (``mitmdump -s
proxy_addon/addon.py``, which still works) or added to the master.  A script
sits two levels down (ScriptLoader -> Script -> module -> addon), and
mitmproxy walks that tree with generators and ``getattr`` for every event of
every flow, about a dozen per request.  Added to the master, the filter is
one more addon in the chain, and the proxy does less work per request for
the same decisions.

The filter goes in just after ``proxyauth`` (whose 407 it must see answered
first) and before the script loader, where ``-s`` put it: scripts given on the
command line (a site's own addons) still see each request after the filter.

The master's addon manager delivers each event only to the addons that can
receive it (``dispatch``): mitmproxy's own walk of all 36 addons for every
event was the largest single cost per request.  Two smaller ones that do
nothing here are removed too (``fastpaths``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mitmproxy import options
from mitmproxy.addons.script import ScriptLoader
from mitmproxy.tools import cmdline, dump
from mitmproxy.tools.main import run

from . import fastpaths
from .dispatch import HookIndex
from .filter import SchoolFilter


class SchoolMaster(dump.DumpMaster):
    def __init__(self, opts: options.Options, **kwargs: Any) -> None:
        super().__init__(opts, **kwargs)
        HookIndex.adopt(self.addons)  # events reach only the addons that have a hook for them
        fastpaths.install()  # no per-message type check, no per-hook field listing
        school = SchoolFilter()
        self.addons.add(school)
        chain = self.addons.chain
        chain.remove(school)
        loader = next((i for i, a in enumerate(chain) if isinstance(a, ScriptLoader)), len(chain))
        chain.insert(loader, school)


def run_mitmdump(argv: Sequence[str]) -> None:
    def extra(args: Any) -> dict:
        # as mitmdump does: a filter expression limits what is saved and shown
        if args.filter_args:
            v = " ".join(args.filter_args)
            return {"save_stream_filter": v, "readfile_filter": v, "dumper_filter": v}
        return {}

    run(SchoolMaster, cmdline.mitmdump, list(argv), extra)
