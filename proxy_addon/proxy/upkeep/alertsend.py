"""Delivering the alerts the recorder gathers, under the monitoring rules in force."""

from __future__ import annotations

from ...monitor.alertlog import keep
from ...monitor.alerts import Alert
from ..flowstate import Runtime
from ..recorder import Recorder


class AlertSend:
    def __init__(self, rt: Runtime, recorder: Recorder) -> None:
        self.rt = rt
        self.alerter = recorder.alerter

    async def run(self) -> None:
        rt = self.rt
        await self.alerter.run(lambda: rt.engine.config.sections.monitoring if rt.engine else None,
                               lambda: rt.engine.config.zone if rt.engine else None, self._keep)

    def _keep(self, batch: list[Alert], outcomes: list[str]) -> None:
        if self.rt.db is not None:
            keep(self.rt.db, batch, outcomes, self.rt.instance)
