"""The weekly report at the rules' day and time (school time), sent once a
week across every instance that shares the database (the first to claim the
week sends it; a failed send gives the claim back and is tried again)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ...monitor.weekly import claim_week, release_week, send_weekly, weekly
from ..flowstate import Runtime

log = logging.getLogger(__name__)


class WeeklySend:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.done = ""  # the week last sent (or "-": nothing due yet)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1 if self.done == "" else 30)
            await self.tick()

    async def tick(self) -> None:
        rt = self.rt
        engine = rt.engine
        mon = engine.config.sections.monitoring if engine is not None else None
        if engine is None or mon is None or mon.weekly is None or mon.email is None or rt.db is None:
            self.done = "-"
            return
        local = rt.now().astimezone(engine.config.zone)
        week = local.strftime("%G-W%V")
        if week == self.done or local.weekday() != mon.weekly.day or local.strftime("%H:%M") < mon.weekly.time:
            self.done = self.done or "-"
            return
        try:
            claimed = await asyncio.to_thread(claim_week, rt.db, week, rt.instance)
        except Exception as e:  # noqa: BLE001 - tried again at the next tick
            log.error("schoolproxy: the weekly report: %s: %s; will retry", type(e).__name__, e)
            return
        if claimed:
            try:
                t1 = rt.now()
                report = await asyncio.to_thread(weekly, rt.db, engine, t1 - timedelta(days=7), t1)
                await asyncio.to_thread(send_weekly, rt.db, mon, report, local.strftime("%Y-%m-%d"), rt.instance)
                log.info("schoolproxy: weekly report for %s sent to %s", week, ", ".join(mon.weekly.to))
            except Exception as e:  # noqa: BLE001 - the claim is given back and the send tried again
                log.error("schoolproxy: the weekly report could not be sent (%s: %s); will retry",
                          type(e).__name__, e)
                await asyncio.to_thread(release_week, rt.db, week)
                return
        self.done = week
