"""Reloading the rules when their files change; the rules in force stay in
force if the new ones are broken.  Rules that load are compared with the
decision log's copy, at start and after each change: a hand edit is
recorded.  Before each look, the files the admin app writes are brought up
to the database's copy (changes made on another machine of the trust)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from mitmproxy import ctx

from ...content.phrases import matcher_for
from ...monitor.decisions import note_changes
from ...monitor.rulesync import pull_shared
from ..flowstate import Runtime

log = logging.getLogger(__name__)


class RuleWatch:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._pull_error: str | None = None  # the last failure to sync the shared rules files (logged once)

    async def run(self) -> None:
        root = Path(ctx.options.schoolproxy_config)
        await self.pull_shared(root)
        await self.note_hand_edits(root)
        while True:
            await asyncio.sleep(ctx.options.schoolproxy_reload_ms / 1000)
            await self.look(Path(ctx.options.schoolproxy_config))

    async def look(self, root: Path) -> None:
        await self.pull_shared(root)
        engine = await asyncio.to_thread(self.rt.changed_rules, root)
        if engine is None:
            return
        page_rules = engine.config.sections.page_content
        if page_rules is not None and page_rules.phrases:  # built here, not at the next page
            await asyncio.to_thread(matcher_for, page_rules)
        self.rt.engine = engine
        await self.note_hand_edits(root)

    async def pull_shared(self, root: Path) -> None:
        rt = self.rt
        if rt.db is None or rt.data is None:
            return
        try:
            written = await asyncio.to_thread(pull_shared, rt.db, root, rt.data)
            if written:
                log.info("schoolproxy: rules changed on another machine, taken from the database: %s",
                         ", ".join(written))
            self._pull_error = None
        except Exception as e:  # noqa: BLE001 - the rules in force stay; tried again at the next tick, said once
            why = f"{type(e).__name__}: {e}"
            if why != self._pull_error:
                log.warning("schoolproxy: could not bring the shared rules files up to the database's copy "
                            "(%s); the rules in force stay", why)
            self._pull_error = why

    async def note_hand_edits(self, root: Path) -> None:
        if self.rt.db is None:
            return
        try:
            changed = await asyncio.to_thread(note_changes, self.rt.db, root, self.rt.instance)
            if changed:
                log.info("schoolproxy: rules edited by hand, recorded in the decision log: %s", ", ".join(changed))
        except Exception as e:  # noqa: BLE001 - the rules still apply; the log says what could not be recorded
            log.error("schoolproxy: could not record rules changes in the decision log (%s: %s)",
                      type(e).__name__, e)
