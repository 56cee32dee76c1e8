"""Audit emission: one row per decision, handed to the batched audit writer,
and the safeguarding alerts a decision raises.

Every decision not yet written is kept among the open ones, so that a stop
in the middle of a flow still records it (`close` writes what is left).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from mitmproxy import http

from ..audit.keyshow import show_on_terminal
from ..audit.seal import Sealer
from ..audit.writer import AuditWriter
from ..classify.decision import Decision, refusal
from ..gate.pilot import not_carried_out, would
from ..gate.record import AUDIT_ACTION, Outcome, Seen, access_row, search_of
from ..monitor.alerts import CIRCUMVENTION_KINDS, Alert, Alerter, CircumventionCounter, system_alert
from ..monitor.devices import DeviceNames
from ..monitor.metrics import Metrics
from ..monitor.searchterms import flagged
from ..policy.monitoring import Monitoring
from ..urls.normalize import Target, escape_controls
from .flowstate import KEY, FlowState, Runtime
from .modes import mode_name


class Recorder:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.writer: AuditWriter | None = None
        self.sealer: Sealer | None = None
        self.devices = DeviceNames()
        self.open: dict[str, FlowState] = {}
        self.alerter = Alerter()
        self.circumvention = CircumventionCounter()
        self.metrics = Metrics()

    def use_writer(self, db: Any, data: Path, chain: str, interval: float, buffer_bytes: int,
                   seal_interval: int, memory_rows: int) -> None:
        """Start a writer for this database, journaling under ``data`` (one
        journal per instance), and its sealer (``audit.seal``); the previous
        ones write what they hold and stop."""
        # One journal per instance and database: a journal replays into the
        # database it was written for, never into another one.
        where = hashlib.sha256(db.url.render_as_string(hide_password=True).encode()).hexdigest()[:12]
        old, self.writer = self.writer, AuditWriter(db, data / "journal" / f"{chain}-{where}", chain=chain,
                                                    interval=interval, buffer_bytes=buffer_bytes,
                                                    memory_rows=memory_rows)
        self.writer.start()
        if self.writer.chain_refused:
            self.alerter.note(system_alert(f"audit log: {self.writer.chain_refused}"))
        if old is not None:
            old.close()
        if self.sealer is not None:
            self.sealer.close()
            self.sealer = None
        if seal_interval > 0:
            writer = self.writer
            self.sealer = Sealer(db, data, chain, seal_interval, writer.live_chains)
            self.sealer.start(show_on_terminal)

    def track(self, key: str, st: FlowState) -> None:
        st.key = key
        self.open[key] = st

    def forget(self, st: FlowState) -> None:
        """A tracked decision that another will record instead."""
        self.open.pop(st.key, None)

    def record_error(self, flow: http.HTTPFlow, why: str) -> None:
        """Turn this flow's decision into a block for an internal error; a flow
        that failed before it had a decision gets one, so it is recorded too."""
        st: FlowState | None = flow.metadata.get(KEY)
        if st is None:
            req = flow.request
            st = FlowState(Target(req.scheme or "http", req.host[:255], req.port, "/"),
                           self.rt.identify_address(flow.client_conn), refusal("error", why), self.rt.now(),
                           method=req.method[:16])
            self.track(flow.id, st)
            flow.metadata[KEY] = st
        st.overrule(Decision("block", st.decision.category, st.decision.categories, "error",
                             st.decision.clause, st.decision.matched, st.decision.origin, why))
        st.answered = True

    def record_unparsed(self, ip: str, why: str, status: int | None) -> None:
        """What a client sent that mitmproxy refused before any hook (``unparsed``)."""
        engine = self.rt.engine
        if engine is None:
            return
        who = engine.identify(ip)
        st = FlowState(Target("http", "(unparsed)", None, "/"), who,
                       refusal("malformed", f"malformed request, refused before it could be read"
                                            f"{' (400)' if status else ''}: {escape_controls(why)[:300]}"),
                       self.rt.now(), method="?")
        self.emit(st, None, status=status)

    def close(self) -> None:
        """The proxy stops: record every open decision, flush the writer, send
        the alerts still gathering."""
        for st in list(self.open.values()):
            self.emit(st, None, error="the proxy stopped before this request finished")
        if self.writer is not None:
            self.writer.close()
        if self.sealer is not None:
            self.sealer.close()  # after the writer: the close seal covers every row
        self.devices.close()
        engine = self.rt.engine
        monitoring = engine.config.sections.monitoring if engine else None
        if self.alerter.pending and monitoring is not None:
            assert engine is not None
            self.alerter.deliver(monitoring, self.alerter.take(), engine.config.zone)

    def emit(self, st: FlowState, flow: http.HTTPFlow | None, error: str | None = None,
             status: int | None = None) -> None:
        engine = self.rt.engine
        if self.writer is None or engine is None or st.logged or st.feedback:
            return
        st.logged = True
        self.open.pop(st.key, None)
        d = st.would or st.decision  # log-only: the row is the block that was not carried out
        if flow is not None:
            resp = flow.response
            status = status if status is not None else (resp.status_code if resp is not None else None)
            raw = flow.request.raw_content
            bytes_in = len(raw) if raw is not None else (st.transfer.bytes_in or None)
        else:
            bytes_in = st.transfer.bytes_in if st.transfer.counted else None  # a tunnel counts its own (``tunnellog``)
        reason = st.reason if error is None else f"{st.reason}; {error}"
        search = search_of(st.target) if flow is not None else None
        action = st.audit_action or AUDIT_ACTION.get(d.action, d.action)
        monitoring: Monitoring | None = engine.config.sections.monitoring
        if monitoring is not None:
            self._alerts(st, d, action, search, monitoring)  # log-only too: the lead hears of it all the same
        if st.would is not None:
            action = would(action)
        pace = st.transfer.pace
        if pace is not None:
            rate = pace.rule.rate_bps or pace.rule.total_bps
            reason = (f"{reason}; throttled ({pace.rule.describe()}) at {rate * 8 / 1e6:g} Mbit/s, "
                      f"held back {pace.waited:.1f} s")
        duration = time.monotonic() - st.t0
        bytes_out = st.transfer.bytes_out if flow is not None or st.transfer.counted else None
        outcome = Outcome(
            status=status, bytes_out=bytes_out, bytes_in=bytes_in, duration_ms=int(duration * 1000),
            media_seconds=round(st.transfer.media_seconds, 3) if st.transfer.media_seconds is not None else None,
            throttle_bps=int((pace.rule.rate_bps or pace.rule.total_bps) * 8) if pace is not None else None,
            throttled_ms=int(pace.waited * 1000) if pace is not None else None,
            enforced=False if st.would is not None else None)
        mode = st.mode or (mode_name(flow.client_conn) if flow is not None else None)
        self.writer.put(access_row(
            engine, d, Seen(st.started, st.who, st.method, st.target, st.tls, mode=mode), instance=self.rt.instance,
            device=st.who.device or self.devices.name(engine.config, st.who.client_ip), event_uid=st.uid,
            search=search,
            outcome=outcome, action=action, reason=reason, related_uid=st.related_uid))
        self.metrics.request(action, d.category, bytes_in, bytes_out, duration, st.decision_s, st.tls, pace is not None,
                             mode)

    def _circumvention_kind(self, d: Decision) -> str | None:
        """What way round the filter a block was, or None if it was not one."""
        if d.rule.startswith("circumvention:"):
            return d.rule[len("circumvention:"):]
        cats = self.rt.engine.config.categories  # type: ignore[union-attr]
        cat = cats.get(d.category) if d.category else None
        return "a VPN, proxy or anonymiser site" if cat is not None and cat.circumvention else None

    def _alerts(self, st: FlowState, d: Decision, action: str, search: str | None, monitoring: Monitoring) -> None:
        cats = self.rt.engine.config.categories  # type: ignore[union-attr]
        cat = cats.get(d.category) if d.category else None
        if action == "block" and cat is not None and (cat.alert or cat.id in monitoring.alert_categories) \
                and (cat.locked or cat.id not in monitoring.weekly_only):  # a locked list is always high-risk
            title = not_carried_out(cat.title) if st.would else cat.title
            self.alerter.note(Alert(st.started, st.who.user, st.who.client_ip, "category", cat.id, title))
        if action == "block":
            kind = self._circumvention_kind(d)
            if kind is not None:
                rules = self.rt.engine.circumvention  # type: ignore[union-attr]
                severity = self.circumvention.note(st.started, st.who.user, kind, rules.alert_technician,
                                                   rules.safeguarding_after)
                if severity is not None:
                    what = CIRCUMVENTION_KINDS.get(kind, kind)
                    self.alerter.note(Alert(st.started, st.who.user, st.who.client_ip, "circumvention", d.category,
                                            not_carried_out(what) if st.would else what, severity=severity))
        if search and monitoring.safeguarding_terms:
            for term in flagged(search, monitoring.safeguarding_terms):
                self.alerter.note(Alert(st.started, st.who.user, st.who.client_ip, "search", None, None, term))
