"""mitmproxy's addon dispatch, without the calls that cannot do anything.

mitmproxy delivers every event to every addon in its chain: for each of the
36 addons mitmdump loads it enters a ``safecall`` context manager, creates
and awaits an ``invoke_addon`` coroutine, and walks the addon's tree looking
for a method of the event's name.  A proxied request raises eight events
(four hooks, each followed by an ``update``), and most addons have none of
those methods (no default addon has ``update`` at all), so about 290 of the
roughly 300 deliveries a request costs find nothing to call.  Profiled under
load, that walk was the largest single cost in the process: more than the
filter's own work.

`HookIndex` delivers an event only to the addons that can receive it: those
with an attribute of the event's name, and every addon that holds others
(a script loader, a script), whose children can change at any time.  The
index is rebuilt whenever the chain is not the one it was built for, so an
addon added, removed or reordered at run time is seen at its next event.
Each delivery keeps mitmproxy's rules (``safecall``'s handling, written inline, the halt rule, a
handler that is not callable is an error, a module of the hook's name is
not), so what an addon sees, in what order, and what an error does are
unchanged; only deliveries that would have found no method are skipped.
A plain addon's handler is called directly, with the hook's arguments
listed once per event: mitmproxy's ``invoke_addon`` builds a coroutine and
walks a generator tree for each addon and event to find the one method.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import AddonManager, cut_traceback
from mitmproxy.addonmanager import logger as addon_log


class HookIndex(AddonManager):
    """An `AddonManager` whose ``trigger_event`` skips addons without the hook."""

    _index: dict[str, tuple[list[Any], list[Any]]]

    @classmethod
    def adopt(cls, manager: AddonManager) -> HookIndex:
        """Turn the master's own manager (with the addons it already holds) into one of these."""
        manager.__class__ = cls
        assert isinstance(manager, HookIndex)
        manager._index = {}
        return manager

    def receivers(self, name: str) -> list[Any]:
        """The addons of the chain, in order, that an event called ``name`` can reach."""
        chain = self.chain
        hit = self._index.get(name)
        if hit is None or hit[0] != chain:  # compares addons by identity, one by one, copying nothing
            hit = (list(chain), [a for a in chain if hasattr(a, "addons") or getattr(a, name, None) is not None])
            self._index[name] = hit
        return hit[1]

    async def trigger_event(self, event: hooks.Hook) -> None:
        name, args = event.name, None
        for addon in self.receivers(event.name):
            try:  # mitmproxy's ``safecall``, inline: a context manager per delivery cost 2 % under load
                if hasattr(addon, "addons"):  # a script loader, a script: mitmproxy walks its children
                    await self.invoke_addon(addon, event)
                    continue
                func = getattr(addon, name, None)
                if callable(func):
                    args = event.args() if args is None else args
                    res = func(*args)
                    if res is not None and inspect.isawaitable(res):
                        await res
                elif func is not None and not isinstance(func, types.ModuleType):
                    raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as e:  # noqa: BLE001 - as safecall: logged, and the next addon is called
                addon_error(e)


def addon_error(e: Exception) -> None:
    """What ``safecall`` logs for an addon's error, with the same traceback cut."""
    tb = cut_traceback(cut_traceback(e.__traceback__, "invoke_addon_sync"), "invoke_addon")
    addon_log.error(f"Addon error: {e}", exc_info=(type(e), e, tb))
