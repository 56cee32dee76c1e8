"""Starting, stopping and restarting the background tasks.

A task that fails is logged and started again after a pause: a bug in the
weekly report must not stop grants from being polled for the rest of the
day, and the technician sees the traceback in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)
RESTART_S = 5.0


class Task(Protocol):
    def run(self) -> Coroutine[Any, Any, None]: ...


class Supervisor:
    def __init__(self, restart_s: float = RESTART_S) -> None:
        self.restart_s = restart_s
        self._running: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._running)

    def start(self, tasks: Sequence[Task]) -> None:
        if self._running:
            return
        loop = asyncio.get_running_loop()
        self._running = [loop.create_task(self._keep(task), name=f"schoolproxy-{type(task).__name__}")
                         for task in tasks]

    def stop(self) -> None:
        for task in self._running:
            task.cancel()
        self._running = []

    async def _keep(self, task: Task) -> None:
        while True:
            try:
                await task.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged, and the task starts again
                log.exception("schoolproxy: background task %s failed; it starts again in %.0f s",
                              type(task).__name__, self.restart_s)
            await asyncio.sleep(self.restart_s)
