"""Keeping the active grants, page verdicts, interception orders and notice acknowledgements
fresh: a new grant applies within a poll, a revoked one stops within a poll,
an expired one at once (each request checks the grant's window against its
own time).  While the database cannot be reached the last snapshot stays."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from mitmproxy import ctx

from ...monitor.interception import load_active as load_orders
from ...monitor.noticeacks import load_acks
from ..flowstate import Runtime

log = logging.getLogger(__name__)


def read_clock_offset(path: str | None) -> float:
    """Seconds to move the clock by (``schoolproxy_clock_offset_file``: tests of times of day)."""
    if not path:
        return 0.0
    try:
        return float(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


class GrantPoll:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as e:  # noqa: BLE001 - the database may be briefly unreachable
                log.warning("schoolproxy: could not reload grants (%s); keeping the last %d",
                            type(e).__name__, len(self.rt.grants))
            await asyncio.sleep(ctx.options.schoolproxy_grants_poll_ms / 1000)

    async def poll(self) -> None:
        rt = self.rt
        rt.clock_offset = await asyncio.to_thread(read_clock_offset, ctx.options.schoolproxy_clock_offset_file)
        if rt.db is None:
            return
        await asyncio.to_thread(rt.refresh_grants)  # keeps the last grants (and says so) if the database is away
        await asyncio.to_thread(rt.refresh_pages)  # verdicts on first-seen sites, whichever proxy fetched them
        rt.interceptions = await asyncio.to_thread(load_orders, rt.db, rt.now())
        notice_rules = rt.engine.config.sections.notice if rt.engine is not None else None
        if notice_rules is not None:
            acks = await asyncio.to_thread(load_acks, rt.db, notice_rules, rt.now())
            cutoff = rt.now() - timedelta(days=notice_rules.every_days)
            for k, v in rt.notice_acks.items():  # this instance's own, newer than the query saw
                if v > cutoff and v > acks.get(k, cutoff):
                    acks[k] = v
            rt.notice_acks = acks
