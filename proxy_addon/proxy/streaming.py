"""Streaming limits (policy 6.3.1: streaming is limited to short clips):
daily budgets per person, shared through the database so several proxies
enforce one budget, and a cap on one continuous stream (shared in Redis
when ``settings.redis`` is set, so a player whose segments reach several
workers is measured as one stream).

Responses are metered while they flow through mitmproxy's streaming callback,
never buffered; a stream past its limit is cut by closing the upstream
connection (``flow.kill()`` does nothing once a body streams, mitmproxy
issue #4711), which the client sees as a truncated body.  An HLS segment
counts what its playlist declares; segments less than a minute apart make
one continuous stream.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import replace
from typing import Any

from mitmproxy import http

from ..audit.usage import add_usage, get_usage
from ..content.media import MediaKind, SegmentDurations, media_seconds
from ..policy.contentrules import StreamingRules, StreamLimit
from . import connections
from .blocking import Pages, stop
from .flowstate import FlowState, Runtime

PENDING_KEYS = 10_000
STREAK_GAP = 60.0  # seconds between segments that still make one continuous stream
AGAIN = "the budget starts again at midnight, school time"  # days are the school's (``_day``)


class Streaming:
    def __init__(self, rt: Runtime, pages: Pages) -> None:
        self.rt = rt
        self.pages = pages
        self.segments = SegmentDurations()
        self._streaks: dict[str, tuple[float, float]] = {}  # user -> (last seen, seconds) of segmented streams
        self._tasks: set[asyncio.Task[None]] = set()
        self._usage_lock = threading.Lock()
        self._pending: dict[tuple[str, str], list[tuple[int, float, int]]] = {}  # (user, day) -> not yet written
        self._ids = itertools.count()

    @property
    def rules(self) -> StreamingRules:
        return self.rt.engine.config.sections.streaming or StreamingRules()  # type: ignore[union-attr]

    def limit_for(self, st: FlowState) -> StreamLimit | None:
        engine = self.rt.engine
        assert engine is not None
        for lim in self.rules.limits:
            if engine.applies(lim.audience, lim.when, st.who, st.started):
                return lim
        return None

    def _day(self, st: FlowState) -> str:
        return self.rt.engine.local_time(st.started).strftime("%Y-%m-%d")  # type: ignore[union-attr]

    def _background(self, fn: Any, *args: Any) -> None:
        self._spawn(asyncio.to_thread(fn, *args))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _streak(self, user: str) -> float:
        """Seconds of the person's current segmented stream: from Redis when
        the limits are shared (a player's segments may reach several
        workers), else (or when Redis is unreachable) this process's own."""
        store = self.rt.shared_store()
        if store is not None:
            seconds = await store.streak(user, STREAK_GAP)
            if seconds is not None:
                return seconds
        last, seconds = self._streaks.get(user, (0.0, 0.0))
        return 0.0 if time.monotonic() - last > STREAK_GAP else seconds

    def _add_to_streak(self, user: str, secs: float) -> None:
        """Kept here always (the fallback) and in Redis when shared."""
        last, seconds = self._streaks.get(user, (0.0, 0.0))
        now = time.monotonic()
        self._streaks[user] = (now, (seconds if now - last <= STREAK_GAP else 0.0) + secs)
        store = self.rt.shared_store()
        if store is not None and secs > 0:
            self._spawn(store.streak(user, STREAK_GAP, secs))

    async def start(self, flow: http.HTTPFlow, st: FlowState, kind: MediaKind) -> bool:
        """A media response begins: refuse it if a budget is used up, else
        meter it.  True if the stream is handled here."""
        st.transfer.media = kind
        st.transfer.media_t0 = time.monotonic()
        limit = self.limit_for(st)
        st.transfer.limit = limit
        rules = self.rules
        declared = self.segments.get(st.target.url) if kind.kind == "segment" else None
        st.transfer.declared = declared
        if limit is not None and (limit.daily_seconds is not None or limit.daily_bytes is not None):
            db = self.rt.db
            st.transfer.usage_before = await asyncio.to_thread(self._used, st.who.user, self._day(st)) if db else (0.0, 0)
            used_s, used_b = st.transfer.usage_before
            if limit.daily_seconds is not None and used_s >= limit.daily_seconds:
                return self._refuse(flow, st, f"the daily streaming budget of {limit.daily_seconds / 60:g} minutes "
                                              f"({limit.id}) is used up: {used_s / 60:.1f} minutes today; "
                                              f"{AGAIN}")
            if limit.daily_bytes is not None and used_b >= limit.daily_bytes:
                return self._refuse(flow, st, f"the daily streaming budget of {limit.daily_bytes / 1e6:g} MB "
                                              f"({limit.id}) is used up: {used_b / 1e6:.1f} MB today; {AGAIN}")
        if limit is not None and limit.max_stream_seconds is not None and kind.kind == "segment":
            seconds = await self._streak(st.who.user)
            if seconds >= limit.max_stream_seconds:
                return self._refuse(flow, st, f"one continuous stream may last at most "
                                              f"{limit.max_stream_seconds / 60:g} minutes ({limit.id}); a break of "
                                              f"{STREAK_GAP / 60:g} minute starts a new one")
            st.transfer.streak_before = seconds
        if kind.is_index:
            return False  # small, counted as nothing; learned from in on_response
        resp = flow.response
        assert resp is not None

        def meter(chunk: bytes) -> bytes:
            if st.audit_action:
                return b""
            st.transfer.bytes_out += len(chunk)
            secs = media_seconds(kind, time.monotonic() - st.transfer.media_t0, st.transfer.bytes_out, rules.video_kbps,
                                 rules.audio_kbps, declared)
            st.transfer.media_seconds = secs
            why = self._over_limit(st, secs)
            if why is not None:
                stop(st, "cut", replace(self.pages.content_decision(st, "streaming:cut", why, "streaming",
                                                                    "Streaming limit reached"), action="cut"))
                connections.close(flow.client_conn, flow.server_conn)
                return b""
            return chunk

        resp.stream = meter
        st.transfer.counted = True
        return True

    def _over_limit(self, st: FlowState, secs: float) -> str | None:
        lim = st.transfer.limit
        if lim is None:
            return None
        if lim.max_stream_seconds is not None and st.transfer.streak_before + secs > lim.max_stream_seconds:
            return (f"the stream was cut at the {lim.max_stream_seconds / 60:g}-minute limit for one continuous "
                    f"stream ({lim.id}): TV, films and continual broadcasts are not allowed")
        used_s, used_b = st.transfer.usage_before
        if lim.daily_seconds is not None and used_s + secs > lim.daily_seconds:
            return f"the stream was cut when the daily budget of {lim.daily_seconds / 60:g} minutes ran out ({lim.id})"
        if lim.daily_bytes is not None and used_b + st.transfer.bytes_out > lim.daily_bytes:
            return f"the stream was cut when the daily budget of {lim.daily_bytes / 1e6:g} MB ran out ({lim.id})"
        return None

    def _refuse(self, flow: http.HTTPFlow, st: FlowState, why: str) -> bool:
        decision = self.pages.content_decision(st, f"streaming:{st.transfer.limit.id if st.transfer.limit else 'limit'}", why,
                                               "streaming", "Streaming limit reached")
        self.pages.replace(flow, st, decision, audit_action="limit", status=429)
        return True

    def learn(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """A playlist arrived: remember what its segments declare."""
        resp, media = flow.response, st.transfer.media
        if resp is not None and media is not None and media.kind == "playlist" and resp.raw_content is not None:
            self.segments.learn(st.target.url, resp.get_content(strict=False) or b"")

    def finish(self, st: FlowState) -> None:
        """A media transfer ended (completely or cut): add it to the day's usage."""
        t = st.transfer
        if t.media is None or t.media.is_index or t.usage_recorded or st.audit_action in ("limit", "block"):
            return
        t.usage_recorded = True
        rules = self.rules
        secs = t.media_seconds or media_seconds(t.media, time.monotonic() - t.media_t0, t.bytes_out,
                                                rules.video_kbps, rules.audio_kbps, t.declared)
        t.media_seconds = secs
        if t.media.kind == "segment":
            self._add_to_streak(st.who.user, secs)
        if self.rt.db is not None and (secs or t.bytes_out):
            key = (st.who.user, self._day(st))
            entry = (next(self._ids), secs, t.bytes_out)
            if len(self._pending) > PENDING_KEYS:  # past days' empty lists let go
                for k in [k for k, v in list(self._pending.items()) if not v]:
                    del self._pending[k]
            self._pending.setdefault(key, []).append(entry)  # counted at once, written in the background
            self._background(self._write, key, entry)

    def _write(self, key: tuple[str, str], entry: tuple[int, float, int]) -> None:
        """On a thread: the usage written, and no longer pending, in one step
        for ``_used`` (so a transfer is never counted twice, nor missed)."""
        assert self.rt.db is not None
        with self._usage_lock:
            try:
                add_usage(self.rt.db, key[0], key[1], entry[1], entry[2])
            finally:
                self._pending[key].remove(entry)

    def _used(self, user: str, day: str) -> tuple[float, int]:
        """On a thread: a day's usage, written or not yet (a player's next
        segment may come before the last one's usage is in the database)."""
        assert self.rt.db is not None
        with self._usage_lock:
            secs, size = get_usage(self.rt.db, user, day)
            waiting = list(self._pending.get((user, day), ()))
        return secs + sum(e[1] for e in waiting), size + sum(e[2] for e in waiting)
