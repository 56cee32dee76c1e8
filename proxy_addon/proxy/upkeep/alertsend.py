"""Delivering the alerts the recorder gathers, under the monitoring rules in force."""

from __future__ import annotations

from ..flowstate import Runtime
from ..recorder import Recorder


class AlertSend:
    def __init__(self, rt: Runtime, recorder: Recorder) -> None:
        self.rt = rt
        self.alerter = recorder.alerter

    async def run(self) -> None:
        rt = self.rt
        await self.alerter.run(lambda: rt.engine.config.sections.monitoring if rt.engine else None,
                               lambda: rt.engine.config.zone if rt.engine else None)
