"""Retention (and expired page verdicts): the purge once a day (the first ten minutes after start), on a thread."""

from __future__ import annotations

import asyncio
import logging

from ...audit.retention import purge
from ...lists.pagestore import purge_expired
from ...policy.monitoring import Retention
from ..flowstate import Runtime

log = logging.getLogger(__name__)
FIRST_S = 600
EVERY_S = 24 * 3600


class DailyPurge:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def run(self) -> None:
        await asyncio.sleep(FIRST_S)
        while True:
            await self.purge()
            await asyncio.sleep(EVERY_S)

    async def purge(self) -> None:
        rt = self.rt
        if rt.db is None or rt.engine is None:
            return
        try:
            result = await asyncio.to_thread(purge, rt.db, rt.engine.config.sections.retention or Retention())
            pages = await asyncio.to_thread(purge_expired, rt.db, rt.now())
            log.info("schoolproxy: daily purge: %s; %d expired page verdicts", result, pages)
        except Exception as e:  # noqa: BLE001 - tried again tomorrow; the log says why
            log.error("schoolproxy: daily purge failed (%s: %s)", type(e).__name__, e)
