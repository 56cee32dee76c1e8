"""Fetching the locked lists' feeds when due (``lists.lockedfeeds``); the
rules watch then applies the new files.  A failure keeps the list in force,
is logged as an error every time it is tried and alerted once, until fixed."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx

from ...lists.lockedfeeds import update_locked
from ...monitor.alerts import Alerter, system_alert
from ..flowstate import Runtime

log = logging.getLogger(__name__)


class FeedCheck:
    def __init__(self, rt: Runtime, alerter: Alerter) -> None:
        self.rt = rt
        self.alerter = alerter
        self._alerted: set[str] = set()

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(ctx.options.schoolproxy_feed_check_s)

    async def check(self) -> None:
        rt = self.rt
        if rt.engine is None or rt.data is None or not any(c.feed for c in rt.engine.config.categories.values()):
            return
        try:
            results = await asyncio.to_thread(update_locked, rt.engine.config, rt.data)
        except Exception as e:  # noqa: BLE001 - the lists in force stay
            results = []
            log.error("schoolproxy: locked list feeds: %s: %s", type(e).__name__, e)
        for r in results:
            if r.outcome == "failed":
                log.error("schoolproxy: locked list %s: %s", r.category, r.message)
                if r.category not in self._alerted:
                    self._alerted.add(r.category)
                    self.alerter.note(system_alert(f"the locked list {r.category} could not be fetched "
                                                   f"({r.message})"))
            elif r.outcome != "not due":
                self._alerted.discard(r.category)
                log.info("schoolproxy: locked list %s %s: %s", r.category, r.outcome, r.message)
