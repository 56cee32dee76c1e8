"""The master's event dispatch (``proxy/dispatch.py``) delivers exactly what
mitmproxy's own would: same addons, same order, same error and halt rules,
including addons added, removed or reloaded while the proxy runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from mitmproxy import exceptions, hooks, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.master import Master
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import tflow

from proxy_addon.proxy.dispatch import HookIndex


class Named:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name


class OnRequest(Named):
    def request(self, flow) -> None:
        self.log.append(f"{self.name}.request")


class OnBoth(Named):
    def request(self, flow) -> None:
        self.log.append(f"{self.name}.request")

    async def response(self, flow) -> None:  # an async hook is awaited
        await asyncio.sleep(0)
        self.log.append(f"{self.name}.response")


class Raises(Named):
    def request(self, flow) -> None:
        self.log.append(f"{self.name}.request")
        raise ValueError("an addon's bug")


class Halts(Named):
    def response(self, flow) -> None:
        self.log.append(f"{self.name}.response")
        raise exceptions.AddonHalt()


class Quiet(Named):
    """No hook at all: never called either way."""


class Holder(Named):
    """Holds other addons (as a script loader does); its children change at run time."""

    def __init__(self, log: list[str], name: str) -> None:
        super().__init__(log, name)
        self.addons: list = []


def deliveries(manager_class: type[AddonManager] | None) -> tuple[list[str], int]:
    """Run one script of chain changes and events; return what the addons saw and
    how many times the manager entered an addon."""

    async def run() -> tuple[list[str], int]:
        log: list[str] = []
        master = Master(options.Options())
        if manager_class is HookIndex:
            HookIndex.adopt(master.addons)
        entered = 0
        invoke = master.addons.invoke_addon

        async def counting(addon, event):
            nonlocal entered
            entered += 1
            await invoke(addon, event)

        master.addons.invoke_addon = counting  # type: ignore[method-assign]
        holder = Holder(log, "holder")
        master.addons.add(Quiet(log, "quiet1"), OnRequest(log, "a"), holder, Raises(log, "bug"),
                          OnBoth(log, "b"), *[Quiet(log, f"q{i}") for i in range(20)])
        f = tflow.tflow(resp=True)

        async def both(tag: str) -> None:
            log.append(f"-- {tag}")
            await master.addons.handle_lifecycle(HttpRequestHook(f))
            await master.addons.handle_lifecycle(HttpResponseHook(f))

        await both("start")
        holder.addons.append(OnBoth(log, "child"))  # a script reloaded with new hooks
        await both("child added")
        late = OnRequest(log, "late")
        master.addons.add(late)
        master.addons.chain.insert(0, master.addons.chain.pop())  # reordered in place
        await both("late added first")
        master.addons.add(Halts(log, "halt"))
        master.addons.chain.insert(1, master.addons.chain.pop())
        await both("halt second")
        master.addons.remove(late)
        holder.addons.clear()
        await both("late and child gone")
        await master.addons.trigger_event(hooks.all_hooks["update"]([f]))  # no addon has it
        master._legacy_log_events.uninstall()  # its log handler holds this event loop
        return log, entered

    return asyncio.run(run())


def test_the_index_delivers_what_mitmproxy_delivers_and_skips_the_rest():
    stock, stock_entered = deliveries(None)
    indexed, indexed_entered = deliveries(HookIndex)
    assert indexed == stock
    # the script above checks every rule, so it must have exercised them:
    assert "child.response" in stock and "late.request" in stock and "bug.request" in stock
    halted = stock[stock.index("-- halt second"):stock.index("-- late and child gone")]
    assert halted[-1] == "halt.response" and "b.response" not in halted  # a halt stops the event
    assert stock[stock.index("-- late added first") + 1] == "late.request"  # chain order kept
    assert indexed_entered < stock_entered / 3, (indexed_entered, stock_entered)


SITE_SCRIPT = '''
class Site:
    def response(self, flow):
        flow.response.headers["X-Site-Script"] = "{version}"
addons = [Site()]
'''


def test_a_site_script_still_sees_every_response_and_its_reload(config_dir, make_proxy, origin, tmp_path: Path):
    """``schoolproxy run -- -s script.py``: a site's own addon sees what the
    filter passed, and an edit of the script (new hooks) takes effect."""
    origin.routes["/"] = b"hello"
    script = tmp_path / "site_script.py"
    script.write_text(SITE_SCRIPT.format(version="1"))
    proxy = make_proxy(config_dir, routes={"site.test": origin.port}, extra=["-s", str(script)])
    with httpx.Client(proxy=proxy.url, timeout=5) as c:
        first = c.get("http://site.test/")
        assert first.status_code == 200 and first.headers.get("x-site-script") == "1"
        blocked = c.get("http://www.bet365.com/")
        assert blocked.status_code == 403 and blocked.headers.get("x-site-script") == "1"
        # a reloaded script with a hook it did not have before
        script.write_text(SITE_SCRIPT.format(version="2") + '''
class Early:
    def requestheaders(self, flow):
        flow.request.headers["X-Seen-By-Site"] = "yes"
addons.append(Early())
''')
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = c.get("http://site.test/")
            if r.headers.get("x-site-script") == "2":
                break
            time.sleep(0.3)
        assert r.headers.get("x-site-script") == "2", proxy.output()[-2000:]
        assert origin.seen[-1].headers.get("X-Seen-By-Site") == "yes"
