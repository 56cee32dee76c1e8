"""Prometheus metrics for a proxy instance or a fleet (``prometheus_client``,
the Prometheus project's own library): what a trust's monitoring scrapes
from ``http://<proxy>/metrics``, and ``/healthz`` for a balancer.

Counted once per request, from the audit row the request produced (so the
counters match the audit log): requests by action and category, bytes each
way, throttled transfers, TLS handling; the time the decision took and the
whole request took, as histograms.  Gauges are set every two seconds from
the status the proxy already keeps: audit queue depth and journal size,
list index entries and age, grants active.

With ``--workers N`` every worker writes its figures to files in a folder
shared by them (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor, which
empties it at start and tells the library when a worker died), and any
worker's ``/metrics`` adds them all up: one scrape sees the whole machine.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,  # noqa: F401  (re-exported for the proxy's endpoint)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One set of metrics for this process (in multiprocess mode, its files)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("schoolproxy_requests", "Requests decided, by action and category",
                                ["action", "category"], registry=r)
        self.bytes = Counter("schoolproxy_bytes", "Bytes through the proxy, by direction", ["direction"], registry=r)
        self.throttled = Counter("schoolproxy_throttled_transfers", "Transfers held to a bandwidth limit", registry=r)
        self.modes = Counter("schoolproxy_requests_by_mode", "Requests by how the device reached the proxy "
                             "(regular, transparent, wireguard)", ["mode"], registry=r)
        self.tls = Counter("schoolproxy_tls_connections", "HTTPS handling: passed through or decrypted", ["mode"],
                           registry=r)
        self.decision = Histogram("schoolproxy_decision_seconds", "Time to decide a request (rules, lists, scores)",
                                  buckets=LATENCY, registry=r)
        self.duration = Histogram("schoolproxy_request_seconds", "Time from request to the end of the response",
                                  buckets=LATENCY, registry=r)
        mode: dict[str, Literal["livesum"]] = {"multiprocess_mode": "livesum"}
        self.queue = Gauge("schoolproxy_audit_queue_events", "Audit events waiting to be written", registry=r, **mode)
        self.journal = Gauge("schoolproxy_audit_journal_bytes", "Size of the audit journal", registry=r, **mode)
        self.lost = Gauge("schoolproxy_audit_unrecorded_events", "Events that could not be recorded (a gap)",
                          registry=r, **mode)
        mx: dict[str, Literal["max"]] = {"multiprocess_mode": "max"}
        self.index_entries = Gauge("schoolproxy_list_index_entries", "Entries in the list index", registry=r, **mx)
        self.index_age = Gauge("schoolproxy_list_index_age_seconds", "Age of the list index", registry=r, **mx)
        self.grants = Gauge("schoolproxy_grants_active", "Grants in force", registry=r, **mx)
        self.local_limits = Gauge("schoolproxy_shared_limits_fallback",
                                  "1 while the shared limits in Redis cannot be reached", registry=r, **mx)
        # every series exists from the start, at 0; the children are kept (labels() locks and looks up)
        self._tls = {h: self.tls.labels(h) for h in ("passthrough", "intercept", "selective", "interception",
                                                    "refused")}
        self._bytes_in, self._bytes_out = self.bytes.labels("in"), self.bytes.labels("out")
        self.up = Gauge("schoolproxy_workers_up", "Proxy processes serving", registry=r, **mode)
        self.name_hits = Gauge("schoolproxy_name_cache_hits", "Host name lookups answered from the 30 s name cache "
                               "since each worker started", registry=r, **mode)
        self.name_misses = Gauge("schoolproxy_name_cache_misses", "Host name lookups asked of the resolver since each "
                                 "worker started", registry=r, **mode)
        self.names = Gauge("schoolproxy_name_cache_names", "Host names in the name cache", registry=r, **mode)
        self.up.set(1)
        self._children: dict[tuple[str, str], Any] = {}
        self._modes = {m: self.modes.labels(m) for m in ("regular", "transparent", "wireguard")}

    def request(self, action: str, category: str | None, bytes_in: int | None, bytes_out: int | None,
                duration_s: float, decision_s: float | None, tls: str | None, throttled: bool,
                mode: str | None = None) -> None:
        """One request's figures (called with its audit row)."""
        if mode:
            (self._modes.get(mode) or self.modes.labels(mode)).inc()
        key = (action, category or "")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(action, category or "none")
        child.inc()
        if bytes_in:
            self._bytes_in.inc(bytes_in)
        if bytes_out:
            self._bytes_out.inc(bytes_out)
        self.duration.observe(duration_s)
        if decision_s is not None:
            self.decision.observe(decision_s)
        if tls:
            (self._tls.get(tls) or self.tls.labels(tls)).inc()
        if throttled:
            self.throttled.inc()

    def status(self, audit: dict[str, Any], index_entries: int | None, index_built: float | None,
               grants: int, shared_limits: str = "off") -> None:
        self.queue.set(audit.get("pending") or 0)
        self.journal.set(audit.get("journal_bytes") or 0)
        self.lost.set(audit.get("lost") or 0)
        if index_entries is not None:
            self.index_entries.set(index_entries)
        if index_built is not None:
            self.index_age.set(max(0.0, time.time() - index_built))
        self.grants.set(grants)
        self.local_limits.set(1 if shared_limits.startswith("local") else 0)

    def name_cache(self, hits: int, misses: int, names: int) -> None:
        """The proxy's name cache (``proxy/resolver.py``): is it answering, how full is it."""
        self.name_hits.set(hits)
        self.name_misses.set(misses)
        self.names.set(names)

    def exposition(self) -> bytes:
        """The text a Prometheus scrape reads: this process's, or every worker's."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def prepare_multiprocess(folder: str) -> None:
    """Before the workers start: an empty folder for their figures."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))


def worker_died(pid: int) -> None:
    """A worker is gone: its live gauges no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
