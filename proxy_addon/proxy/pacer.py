"""Holding a response to its bandwidth rule: picks the rule (``content.pacing``
has the token buckets and the paced writer, and why pacing works this way),
wraps the client's writer the first time one of its transfers is paced, and
makes a paced body stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mitmproxy import connection, http

from ..content.pacing import PacedWriter, Throttler, choose
from ..policy.bandwidth import BandwidthRules
from . import connections
from .flowstate import FlowState, Runtime, count_stream


class Pacer:
    def __init__(self, rt: Runtime, download_sniffer: Callable[[http.HTTPFlow, FlowState], Any]) -> None:
        self.rt = rt
        self.throttler = Throttler()
        self._writers: dict[str, PacedWriter] = {}
        self._sniffer = download_sniffer

    def start(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """Hold this response to its bandwidth rule, if one applies."""
        engine = self.rt.engine
        assert engine is not None and flow.response is not None
        rules: BandwidthRules | None = engine.config.sections.bandwidth
        if not rules or st.audit_action or not rules.may_apply(st.transfer.content_kind):
            return
        length = st.transfer.resp_headers[2] if st.transfer.resp_headers else flow.response.headers.get("content-length", "")
        rule = choose(rules, engine, st.who, st.started, st.decision.categories, st.transfer.content_kind,
                      int(length) if length.isdigit() else None)
        if rule is None:
            return
        if st.log_only:  # a pilot records the rule that would have held it, and holds nothing
            st.note(f"would have been throttled ({rule.describe()}; log-only)")
            return
        pace = self.throttler.pace(rule, st.who.user, self.rt.shared_store())
        if pace is None:
            return
        # The client's writer is wrapped the first time one of its transfers is
        # paced (and stays wrapped for that connection): unpaced connections
        # pay nothing.
        client = flow.client_conn
        writer = self._writers.get(client.id)
        if writer is None:
            writer = connections.wrap_client_writer(client, PacedWriter)
            if writer is None:
                return
            self._writers[client.id] = writer
        st.transfer.pace = writer.pace = pace
        # A paced body must stream: one mitmproxy held whole would reach the
        # client's socket buffers at once, and only the next read would wait.
        resp = flow.response
        if st.transfer.sniff:
            st.transfer.sniff = False
            resp.stream = self._sniffer(flow, st)
            st.transfer.counted = True
        elif not resp.stream:
            count_stream(resp, st)

    def end(self, flow: http.HTTPFlow, st: FlowState) -> None:
        writer = self._writers.get(flow.client_conn.id)
        if st.transfer.pace is not None and writer is not None and writer.pace is st.transfer.pace:
            writer.pace = None

    def client_disconnected(self, client: connection.Client) -> None:
        self._writers.pop(client.id, None)
