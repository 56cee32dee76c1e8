"""``<data>/status-<instance>.json`` every two seconds, for ``schoolproxy
status`` and the metrics; and the alerts the status raises once each: the
audit log cannot record, the journal runs on its reserve, the shared limits
fell back to local ones."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from mitmproxy import ctx

from ...audit.status import write_status
from ...lists.lockedfeeds import load_states
from ...monitor.alerts import system_alert
from ..flowstate import Runtime
from ..recorder import Recorder
from ..resolver import CachedResolver

log = logging.getLogger(__name__)
EVERY_S = 2.0


class StatusFile:
    def __init__(self, rt: Runtime, recorder: Recorder, names: CachedResolver | None = None) -> None:
        self.rt = rt
        self.recorder = recorder
        self.names = names  # the name cache, for /metrics
        self.alerter = recorder.alerter
        self._recording = True
        self._shared_alerted = False
        self._reserve_alerted = False

    async def run(self) -> None:
        while True:
            state = self.state()
            if state is not None:
                self.note(state)
                data = self.rt.data
                assert data is not None
                try:
                    await asyncio.to_thread(write_status, data / f"status-{self.rt.instance}.json", state)
                except OSError:
                    pass  # a full disk: the alert and the log line say what matters
            await asyncio.sleep(EVERY_S)

    def state(self) -> dict[str, Any] | None:
        writer, rt = self.recorder.writer, self.rt
        if writer is None or rt.data is None:
            return None
        return {"instance": rt.instance, "pid": os.getpid(), "at": datetime.now(timezone.utc).isoformat(),
                "rules_digest": rt.engine.config.digest if rt.engine else None,
                "rules_problem": rt.rules_problem, "rules_since": rt.rules_since.isoformat(),
                "grants_active": len(rt.grants), "audit": writer.status(),
                "ca_refusing_devices": rt.ca_refusing_devices,
                "modes": listening_modes(ctx.options.mode, ctx.options.schoolproxy_wireguard),
                "directory": rt.signin.status() if rt.signin is not None and rt.signin.active else None,
                "locked_feeds": {k: asdict(v) for k, v in load_states(rt.data).items()},
                "sealing": self.recorder.sealer.error if self.recorder.sealer is not None else "off",
                "shared_limits": rt.shared.status() if rt.shared is not None else "off"}

    def note(self, state: dict[str, Any]) -> None:
        """Log and alert what changed; update the metrics."""
        audit: dict[str, Any] = state["audit"]
        shared = self.rt.shared
        self._shared_limits_alert(shared.failing if shared is not None else None)
        self._reserve_alert(audit)
        self._recording_alert(audit)
        self._metrics(audit, state["shared_limits"])

    def _recording_alert(self, audit: dict[str, Any]) -> None:
        writer = self.recorder.writer
        ok = writer is not None and writer.can_record and not audit["database_error"]
        if ok == self._recording:
            return
        self._recording = ok
        if ok:
            log.info("schoolproxy: audit log recording again")
            return
        log.error("schoolproxy: audit log cannot record: %s", audit)
        engine = self.rt.engine
        self.alerter.note(system_alert(
            "the audit log cannot record ("
            f"{audit['database_error'] or audit['journal_failing'] or 'its buffer is full'}); "
            f"settings.on_audit_failure is {engine.config.settings.on_audit_failure if engine else 'serve'}"))

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

    def _metrics(self, audit: dict[str, Any], shared: Any) -> None:
        lists = self.rt.engine.lists if self.rt.engine is not None else None
        built = None
        if lists is not None:
            try:
                built = datetime.fromisoformat(lists.meta["built"]).timestamp()
            except (KeyError, ValueError):
                pass
        self.recorder.metrics.status(audit, lists.entries if lists is not None else None, built,
                                     len(self.rt.grants), shared)
        if self.names is not None:
            names = self.names.stats()
            self.recorder.metrics.name_cache(names.hits, names.misses, names.names)


def listening_modes(specs: Sequence[str], wireguard: bool) -> list[str]:
    """The modes this proxy listens in, as ``status`` names them: one entry
    for all the WireGuard listeners (one per enrolled device)."""
    modes = [s.split("@", 1)[0] for s in specs if not s.startswith("wireguard")]
    devices = sum(1 for s in specs if s.startswith("wireguard"))
    return modes + ([f"wireguard ({devices} devices)"] if devices or wireguard else [])
