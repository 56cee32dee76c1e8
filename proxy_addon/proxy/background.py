"""The addon's background tasks: noticing configuration changes (the rules in
force stay in force if the new ones are broken), keeping the active grants
fresh, the daily retention purge, and sending safeguarding alerts."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import ctx

from ..audit.retention import purge
from ..audit.status import write_status
from ..classify.reload import reloaded
from ..content.phrases import matcher_for
from ..grants.store import load_active
from ..monitor.alerts import system_alert
from ..monitor.decisions import note_changes
from ..monitor.rulesync import pull_shared
from ..lists.lockedfeeds import load_states, update_locked
from ..monitor.interception import load_active as load_orders
from ..monitor.notice import load_acks
from ..monitor.weekly import claim_week, release_week, send_weekly, weekly
from ..policy.monitoring import Retention
from .flowstate import Runtime
from .recorder import Recorder
from ..policy.reloader import Signature

log = logging.getLogger(__name__)


class Background:
    def __init__(self, rt: Runtime, recorder: Recorder) -> None:
        self.rt = rt
        self.recorder = recorder
        self.alerter = recorder.alerter
        self.signature: Signature | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._feed_alerted: set[str] = set()  # locked lists whose failure was alerted (once, until fixed)
        self._shared_alerted = False
        self._reserve_alerted = False
        self._pull_error: str | None = None  # the last failure to sync the shared rules files (logged once)

    def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        jobs: list[Callable[[], Any]] = [self._poll_grants, self._daily_purge, self._alerts, self._status]
        if ctx.options.schoolproxy_reload_ms > 0:
            jobs.insert(0, self._watch_config)
        if ctx.options.schoolproxy_feed_check_s > 0:
            jobs.append(self._locked_feeds)
        jobs.append(self._weekly_report)
        self._tasks = [loop.create_task(job()) for job in jobs]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def _alerts(self) -> Any:
        rt = self.rt
        return self.alerter.run(lambda: rt.engine.config.sections.get("monitoring") if rt.engine else None,
                                lambda: rt.engine.config.zone if rt.engine else None)

    async def _status(self) -> None:
        """``<data>/status-<instance>.json`` every two seconds, for ``schoolproxy
        status``; a change in whether the audit log can record is logged."""
        was_ok = True
        while True:
            writer, rt = self.recorder.writer, self.rt
            if writer is not None and rt.data is not None:
                state = {"instance": rt.instance, "pid": os.getpid(), "at": datetime.now(timezone.utc).isoformat(),
                         "rules_digest": rt.engine.config.digest if rt.engine else None,
                         "grants_active": len(rt.grants), "audit": writer.status(),
                         "directory": rt.signin.status() if rt.signin is not None and rt.signin.active else None,
                         "locked_feeds": {k: asdict(v) for k, v in load_states(rt.data).items()},
                         "sealing": self.recorder.sealer.error if self.recorder.sealer is not None else "off",
                         "shared_limits": rt.shared.status() if rt.shared is not None else "off"}
                self._shared_limits_alert(rt.shared.failing if rt.shared is not None else None)
                self._reserve_alert(state["audit"])
                ok = writer.can_record and not state["audit"]["database_error"]
                if ok != was_ok:
                    (log.info if ok else log.error)("schoolproxy: audit log %s", "recording again" if ok else
                                                    f"cannot record: {state['audit']}")
                    if not ok:
                        audit = state["audit"]
                        self.alerter.note(system_alert(
                            "the audit log cannot record ("
                            f"{audit['database_error'] or audit['journal_failing'] or 'its buffer is full'}); "
                            f"settings.on_audit_failure is "
                            f"{rt.engine.config.settings.on_audit_failure if rt.engine else 'serve'}"))
                    was_ok = ok
                self._metrics(state)
                try:
                    await asyncio.to_thread(write_status, rt.data / f"status-{rt.instance}.json", state)
                except OSError:
                    pass  # a full disk: the log line above says what matters
            await asyncio.sleep(2)

    def _reserve_alert(self, audit: dict[str, Any]) -> None:
        """Tell the technician once when the disk fills and the journal starts on its reserve."""
        in_use = audit.get("journal_reserve") == "in use"
        if in_use and not self._reserve_alerted:
            self.alerter.note(system_alert(
                f"the disk is full: the audit journal is writing into its {audit.get('journal_reserve_size')} "
                "reserve. Free space now: when the reserve is used up, events wait in memory (counted on disk)"))
        self._reserve_alerted = in_use

    def _shared_limits_alert(self, failing: str | None) -> None:
        """Tell the technician once when the shared limits fall back to local ones."""
        if failing is not None and not self._shared_alerted:
            self.alerter.note(system_alert(f"the shared limits in Redis cannot be reached ({failing}); each proxy "
                                           "process applies its own bandwidth limits until it is back"))
        self._shared_alerted = failing is not None

    def _metrics(self, state: dict[str, Any]) -> None:
        lists = self.rt.engine.lists if self.rt.engine is not None else None
        built = None
        if lists is not None:
            try:
                built = datetime.fromisoformat(lists.meta["built"]).timestamp()
            except (KeyError, ValueError):
                pass
        self.recorder.metrics.status(state["audit"], lists.entries if lists is not None else None, built,
                                     len(self.rt.grants), state["shared_limits"])

    def _read_clock_offset(self) -> float:
        path = ctx.options.schoolproxy_clock_offset_file
        if not path:
            return 0.0
        try:
            return float(Path(path).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    async def _poll_grants(self) -> None:
        """Keep the active grants (and interception orders) fresh: a new grant
        applies within a poll, a revoked one stops within a poll, an expired
        one at once (each request checks the grant's window against its own
        time)."""
        rt = self.rt
        while True:
            try:
                rt.clock_offset = await asyncio.to_thread(self._read_clock_offset)
                if rt.db is not None:
                    rt.grants = await asyncio.to_thread(load_active, rt.db, rt.now())
                    rt.interceptions = await asyncio.to_thread(load_orders, rt.db, rt.now())
                    notice_rules = rt.engine.config.sections.get("notice") if rt.engine is not None else None
                    if notice_rules is not None:
                        acks = await asyncio.to_thread(load_acks, rt.db, notice_rules, rt.now())
                        cutoff = rt.now() - timedelta(days=notice_rules.every_days)
                        for k, v in rt.notice_acks.items():  # this instance's own, newer than the query saw
                            if v > cutoff and v > acks.get(k, cutoff):
                                acks[k] = v
                        rt.notice_acks = acks
            except Exception as e:  # the database may be briefly unreachable; keep the last snapshot
                log.warning("schoolproxy: could not reload grants (%s); keeping the last %d",
                            type(e).__name__, len(rt.grants))
            await asyncio.sleep(ctx.options.schoolproxy_grants_poll_ms / 1000)

    async def _locked_feeds(self) -> None:
        """Fetch the locked lists' feeds when due (``lists.lockedfeeds``); the
        configuration watcher then applies the new files.  A failure keeps the
        list in force and is logged as an error every time it is tried."""
        while True:
            rt = self.rt
            if rt.engine is not None and rt.data is not None and any(
                    c.feed for c in rt.engine.config.categories.values()):
                try:
                    results = await asyncio.to_thread(update_locked, rt.engine.config, rt.data)
                except Exception as e:
                    results = []
                    log.error("schoolproxy: locked list feeds: %s: %s", type(e).__name__, e)
                for r in results:
                    if r.outcome == "failed":
                        log.error("schoolproxy: locked list %s: %s", r.category, r.message)
                        if r.category not in self._feed_alerted:
                            self._feed_alerted.add(r.category)
                            self.alerter.note(system_alert(f"the locked list {r.category} could not be fetched "
                                                           f"({r.message})"))
                    elif r.outcome != "not due":
                        self._feed_alerted.discard(r.category)
                        log.info("schoolproxy: locked list %s %s: %s", r.category, r.outcome, r.message)
            await asyncio.sleep(ctx.options.schoolproxy_feed_check_s)

    async def _weekly_report(self) -> None:
        """The weekly report at the rules' day and time (school time), once a
        week across every instance sharing the database."""
        done = ""
        while True:
            await asyncio.sleep(1 if done == "" else 30)
            rt = self.rt
            mon = rt.engine.config.sections.get("monitoring") if rt.engine is not None else None
            if mon is None or mon.weekly is None or mon.email is None or rt.db is None:
                done = "-"
                continue
            local = rt.now().astimezone(rt.engine.config.zone)
            week = local.strftime("%G-W%V")
            if week == done or local.weekday() != mon.weekly.day or local.strftime("%H:%M") < mon.weekly.time:
                done = done or "-"
                continue
            try:
                claimed = await asyncio.to_thread(claim_week, rt.db, week, rt.instance)
            except Exception as e:
                log.error("schoolproxy: the weekly report: %s: %s; will retry", type(e).__name__, e)
                continue
            if claimed:
                try:
                    t1 = rt.now()
                    report = await asyncio.to_thread(weekly, rt.db, rt.engine, t1 - timedelta(days=7), t1)
                    await asyncio.to_thread(send_weekly, rt.db, mon, report, local.strftime("%Y-%m-%d"),
                                            rt.instance)
                    log.info("schoolproxy: weekly report for %s sent to %s", week, ", ".join(mon.weekly.to))
                except Exception as e:
                    log.error("schoolproxy: the weekly report could not be sent (%s: %s); will retry",
                              type(e).__name__, e)
                    await asyncio.to_thread(release_week, rt.db, week)
                    continue
            done = week

    async def _daily_purge(self) -> None:
        """Retention: once a day (first ten minutes after start), on a thread."""
        await asyncio.sleep(600)
        while True:
            rt = self.rt
            if rt.db is not None and rt.engine is not None:
                try:
                    result = await asyncio.to_thread(purge, rt.db,
                                                     rt.engine.config.sections.get("retention") or Retention())
                    log.info("schoolproxy: daily purge: %s", result)
                except Exception as e:
                    log.error("schoolproxy: daily purge failed (%s: %s)", type(e).__name__, e)
            await asyncio.sleep(24 * 3600)

    async def _watch_config(self) -> None:
        """Reload when the files change; keep the rules in force if the new
        ones are broken.  Rules that load are compared with the decision
        log's copy, at start and after each change: a hand edit is recorded.
        Before each look, the files the admin app writes are brought up to
        the database's copy (changes made on another machine of the trust)."""
        await self._pull_shared(Path(ctx.options.schoolproxy_config))
        await self._note_hand_edits(Path(ctx.options.schoolproxy_config))
        while True:
            await asyncio.sleep(ctx.options.schoolproxy_reload_ms / 1000)
            assert self.rt.engine is not None
            root = Path(ctx.options.schoolproxy_config)
            await self._pull_shared(root)
            engine, self.signature = await asyncio.to_thread(reloaded, root, self.rt.engine, self.signature)
            if engine is not None:
                page_rules = engine.config.sections.get("page_content")
                if page_rules is not None and page_rules.phrases:  # built here, not at the next page
                    await asyncio.to_thread(matcher_for, page_rules)
                self.rt.engine = engine
                await self._note_hand_edits(root)

    async def _pull_shared(self, root: Path) -> None:
        rt = self.rt
        if rt.db is None or rt.data is None:
            return
        try:
            written = await asyncio.to_thread(pull_shared, rt.db, root, rt.data)
            if written:
                log.info("schoolproxy: rules changed on another machine, taken from the database: %s",
                         ", ".join(written))
            self._pull_error = None
        except Exception as e:  # the rules in force stay; tried again at the next tick, said once
            why = f"{type(e).__name__}: {e}"
            if why != self._pull_error:
                log.warning("schoolproxy: could not bring the shared rules files up to the database's copy "
                            "(%s); the rules in force stay", why)
            self._pull_error = why

    async def _note_hand_edits(self, root: Path) -> None:
        if self.rt.db is None:
            return
        try:
            changed = await asyncio.to_thread(note_changes, self.rt.db, root, self.rt.instance)
            if changed:
                log.info("schoolproxy: rules edited by hand, recorded in the decision log: %s", ", ".join(changed))
        except Exception as e:  # the rules still apply; the log says what could not be recorded
            log.error("schoolproxy: could not record rules changes in the decision log (%s: %s)",
                      type(e).__name__, e)
