"""Undecrypted tunnels on the record from their first moment (``audit.tunnelrows``):
the opening row when the tunnel is let through, bytes counted as they are
written to either side (a wrapped stream writer: one addition per chunk, no
hook), a ``tunnel`` row when it closes and every ten minutes while it stays
open, and at start the ends of tunnels a crash left open."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from mitmproxy import connection

from ..audit.tunnelrows import ACTION, REPORT_S, interrupted_row, unfinished
from ..grants.feedback import new_event_uid
from . import connections
from .flowstate import FlowState, Runtime
from .recorder import Recorder

log = logging.getLogger(__name__)
OPENED = "tunnel opened (its end is recorded when it closes)"


class CountingWriter:
    """A stream writer that adds what it writes to a tunnel's byte count."""

    def __init__(self, writer: Any, st: FlowState, to_client: bool) -> None:
        self._writer = writer
        self._counts = st.transfer
        self._raw = writer.write
        self.write = self._to_client if to_client else self._to_server
        # mitmproxy drains every writer after every read: bound here, not found through __getattr__
        self.drain = writer.drain
        self.is_closing = writer.is_closing

    def _to_client(self, data: bytes) -> None:
        self._raw(data)
        self._counts.bytes_out += len(data)

    def _to_server(self, data: bytes) -> None:
        self._raw(data)
        self._counts.bytes_in += len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class TunnelLog:
    def __init__(self, rt: Runtime, recorder: Recorder, tunnels: Callable[[], Iterable[FlowState]]) -> None:
        self.rt = rt
        self.recorder = recorder
        self.tunnels = tunnels  # the tunnels open now
        self.started = datetime.now(timezone.utc)
        self.report_s = REPORT_S  # option schoolproxy_tunnel_report_s

    def opened(self, client: connection.Client, st: FlowState) -> None:
        """The tunnel is let through: its row now; ``st`` becomes its end."""
        uid = new_event_uid()
        opening = replace(st, logged=False, key="", uid=uid, notes=(*st.notes, OPENED))
        self.recorder.emit(opening, None, status=200)
        st.uid, st.related_uid, st.audit_action, st.transfer.counted = None, uid, ACTION, True
        st.transfer.bytes_out = st.transfer.bytes_in = 0
        st.transfer.reported = time.monotonic()
        connections.wrap_writer(client, None, lambda w: CountingWriter(w, st, True))

    def server_connected(self, client: connection.Client, server: connection.Server, st: FlowState) -> None:
        connections.wrap_writer(client, server, lambda w: CountingWriter(w, st, False))

    def ended(self, st: FlowState, why: str) -> None:
        if st.related_uid is None:
            return
        self.recorder.emit(self._noted(st, why), None, status=200)

    def _noted(self, st: FlowState, why: str) -> FlowState:
        took = time.monotonic() - st.t0
        st.note(f"{why} after {took:.0f} s: {st.transfer.bytes_out} bytes to the client, "
                f"{st.transfer.bytes_in} from it")
        return st

    def report(self, tunnels: list[FlowState]) -> None:
        """A row for each tunnel open for another ``report_s``, with its bytes so far."""
        now = time.monotonic()
        for st in tunnels:
            if st.related_uid is not None and now - st.transfer.reported >= self.report_s:
                st.transfer.reported = now
                progress = replace(st, logged=False, key="", decision=st.decision)
                self.recorder.emit(self._noted(progress, "still open"), None, status=200)

    async def run(self) -> None:
        """Write up long tunnels; once the audit writer has caught up, record
        the ends of the tunnels the last run left open."""
        recovered = False
        while True:
            await asyncio.sleep(1.0)
            self.report(list(self.tunnels()))
            writer, db = self.recorder.writer, self.rt.db
            if not recovered and writer is not None and db is not None and writer.settled:
                try:
                    rows = await asyncio.to_thread(unfinished, db, self.rt.instance, self.started)
                except Exception as e:  # noqa: BLE001 - the database may be away: try again
                    log.warning("schoolproxy: could not look for tunnels left open by a crash (%s)", type(e).__name__)
                    continue
                now = datetime.now(timezone.utc)
                for opened in rows:
                    writer.put(interrupted_row(opened, now, self.rt.instance))
                if rows:
                    log.warning("schoolproxy: %d tunnels were open when the proxy last stopped uncleanly; "
                                "recorded as interrupted", len(rows))
                recovered = True
