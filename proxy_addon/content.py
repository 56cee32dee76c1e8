"""Content controls inside allowed traffic: streaming limits, download
controls and uploads of personal data (policy 6.3.1), as called from the
addon's hooks.  They need to see content, so with ``tls: hostname`` they
apply to plain HTTP only; with ``tls: intercept`` to HTTPS too.

Streaming responses are metered while they flow through mitmproxy's
streaming callback, never buffered; a stream past its limit is cut by closing
the upstream connection (``flow.kill()`` does nothing once a body streams,
mitmproxy issue #4711), which the client sees as a truncated body.

Downloads are judged by their first bytes.  A file of known length up to
``sniff_buffer_mb`` is held by mitmproxy until it is complete, so a blocked
one can be answered with the block page; a larger one (or one of unknown
length) streams, its first 4 KB are held back until they can be judged, and a
blocked one is cut (the browser shows a failed download, the audit log says
why).

Uploads up to ``scan_limit_mb`` are scanned whole before they leave; a larger
upload streams and its first ``scan_limit_mb`` are scanned on the way (the
rest passes unscanned: a school that needs more should lower the cloud
categories to block).  Personal data on its way to a category in
``block_personal_data_to`` stops the upload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from . import connections
from .contentrules import DownloadRules, StreamingRules, StreamLimit, UploadRules
from .downloads import SNIFF_BYTES, filename_of, is_attachment, is_torrent, is_tracker_request, sniff_software
from .engine import Decision
from .media import MediaKind, SegmentDurations, classify, media_seconds
from .personaldata import Scanner
from .usage import add_usage, get_usage

if TYPE_CHECKING:
    from .filter import FlowState, SchoolFilter

log = logging.getLogger(__name__)
RENDERED = ("text/html", "text/css", "text/javascript", "application/javascript", "application/json",
            "application/xml", "text/xml", "image/", "font/", "text/plain", "application/manifest+json",
            "application/wasm")
STREAK_GAP = 60.0  # seconds between segments that still make one continuous stream


class ContentControls:
    def __init__(self, owner: SchoolFilter):
        self.owner = owner
        self.segments = SegmentDurations()
        self._streaks: dict[str, tuple[float, float]] = {}  # user -> (last seen, seconds) of segmented streams
        self._tasks: set[asyncio.Task[None]] = set()

    # -- rules ----------------------------------------------------------------------

    @property
    def streaming(self) -> StreamingRules:
        return self.owner.engine.config.sections.get("streaming") or StreamingRules()  # type: ignore[union-attr]

    @property
    def downloads(self) -> DownloadRules:
        return self.owner.engine.config.sections.get("downloads") or DownloadRules()  # type: ignore[union-attr]

    @property
    def uploads(self) -> UploadRules:
        return self.owner.engine.config.sections.get("uploads") or UploadRules()  # type: ignore[union-attr]

    def limit_for(self, st: FlowState) -> StreamLimit | None:
        engine = self.owner.engine
        assert engine is not None
        for lim in self.streaming.limits:
            if engine.applies(lim.audience, lim.when, st.who, st.started):
                return lim
        return None

    def _decision(self, st: FlowState, rule: str, reason: str, category: str | None, title: str) -> Decision:
        cat = self.owner.engine.config.categories.get(category) if category else None  # type: ignore[union-attr]
        return Decision("block", category, st.decision.categories, rule, "6.3.1", st.decision.matched,
                        st.decision.origin, reason, st.decision.decrypt,
                        cat.policy_text if cat else st.decision.policy_text, title)

    def _stop(self, st: FlowState, audit_action: str, decision: Decision) -> None:
        st.decision = decision
        st.audit_action = audit_action

    def _day(self, st: FlowState) -> str:
        return self.owner.engine.local_time(st.started).strftime("%Y-%m-%d")  # type: ignore[union-attr]

    def _background(self, fn: Any, *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn, *args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests --------------------------------------------------------------------

    def on_requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """Request-time controls; True if the request was answered."""
        req = flow.request
        if self.downloads.torrents and is_tracker_request(st.target.path, st.target.query):
            self._stop(st, "block", self._decision(
                st, "download:tracker", "a BitTorrent tracker announce: file-sharing software is prohibited",
                "file_sharing", "File sharing"))
            return True
        if req.method in ("POST", "PUT", "PATCH"):
            length = req.headers.get("content-length", "")
            if not (length.isdigit() and int(length) <= self.uploads.scan_limit):
                req.stream = self._upload_scanner(flow, st)
        return False

    def _upload_scanner(self, flow: http.HTTPFlow, st: FlowState) -> Any:
        scanner = Scanner()
        limit = self.uploads.scan_limit

        def scan(chunk: bytes) -> bytes:
            if st.audit_action == "block":
                return b""
            st.bytes_in += len(chunk)
            if scanner.scanned < limit and chunk:
                scanner.feed(chunk[: limit - scanner.scanned])
                if scanner.findings.sensitive and self._upload_blocked(st, scanner):
                    if flow.server_conn is not None:
                        connections.close(flow.client_conn, flow.server_conn)
                    return b""
            return chunk

        return scan

    def on_request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """Scan a buffered upload before it leaves."""
        req = flow.request
        if req.method not in ("POST", "PUT", "PATCH") or req.stream:
            return
        body = req.get_content(strict=False) or b""
        if not body:
            return
        scanner = Scanner()
        scanner.feed(body[: self.uploads.scan_limit])
        if scanner.findings.sensitive and self._upload_blocked(st, scanner):
            flow.response = self.owner.block_response(st)

    def _upload_blocked(self, st: FlowState, scanner: Scanner) -> bool:
        found = scanner.findings.summary()
        dest = next((c for c in st.decision.categories if c in self.uploads.block_to), None)
        if dest is None:
            st.decision = replace(st.decision, reason=f"{st.decision.reason}; the upload carries personal data "
                                                      f"({found})")
            return False
        self._stop(st, "block", self._decision(
            st, "upload:personal-data", f"an upload to {dest.replace('_', ' ')} carrying personal data ({found})",
            dest, "Personal data must not go to cloud storage"))
        return True

    # -- responses ---------------------------------------------------------------------

    @staticmethod
    def read_headers(resp: http.Response, st: FlowState) -> tuple[str, str, str]:
        """Content-Type, Content-Disposition and Content-Length, in one pass
        over the raw header fields (three case-insensitive lookups cost more)."""
        ctype = disposition = length = ""
        for name, value in resp.headers.fields:
            n = name.lower()
            if n == b"content-type":
                ctype = value.decode("utf-8", "surrogateescape")
            elif n == b"content-disposition":
                disposition = value.decode("utf-8", "surrogateescape")
            elif n == b"content-length":
                length = value.decode("utf-8", "surrogateescape")
        st.resp_headers = (ctype, disposition, length)
        return st.resp_headers

    def needs_judging(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """False for the common case (a page, script or image, shown not saved),
        decided from the headers alone."""
        assert flow.response is not None
        ctype, disposition, _ = self.read_headers(flow.response, st)
        if disposition:
            return True
        path = st.target.path
        return (classify(ctype, path) is not None or not ctype.startswith(RENDERED)
                or path.endswith((".torrent", ".exe", ".msi")))

    async def on_responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """Response-time controls; True if the stream is handled here."""
        resp = flow.response
        assert resp is not None
        ctype, disposition, length = st.resp_headers or self.read_headers(resp, st)
        kind = classify(ctype, st.target.path)
        st.content_kind = "media" if kind is not None and not kind.is_index else None
        name = filename_of(disposition, st.target.path)
        rules = self.downloads
        if kind is not None and not kind.is_index and is_attachment(disposition) and rules.media_files:
            self._replace(flow, st, self._decision(
                st, "download:media-file", f"{kind.kind} delivered as a file ({name}): downloading media for "
                                           "personal use is not permitted", "media_downloaders", "Media download"))
            return True
        if rules.torrents and is_torrent(b"", name, ctype):
            self._replace(flow, st, self._decision(st, "download:torrent", f"a .torrent file ({name})",
                                                   "file_sharing", "File sharing"))
            return True
        if kind is not None:
            return await self._start_media(flow, st, kind)
        if not self._download_candidate(ctype, disposition):
            return False
        st.content_kind = "download"
        verdict = self._software_verdict(st, b"", name, ctype)
        if verdict is not None:
            self._replace(flow, st, verdict)
            return True
        if length.isdigit() and int(length) <= rules.sniff_buffer and not resp.stream:
            st.sniff = True  # judged whole in on_response
            return True
        resp.stream = self.download_sniffer(flow, st)
        st.counted = True
        return True

    @staticmethod
    def _download_candidate(ctype: str, disposition: str) -> bool:
        ct = ctype.split(";", 1)[0].strip().lower()
        return is_attachment(disposition) or not ct.startswith(RENDERED)

    def _software_allowed(self, st: FlowState) -> bool:
        rules = self.downloads
        if not rules.software or not rules.software_groups.isdisjoint(st.who.groups):
            return True
        return any(g.live(st.started) and g.covers_person(st.who) and g.covers_download(st.target)
                   for g in self.owner.grants)

    def _software_verdict(self, st: FlowState, head: bytes, name: str, ctype: str) -> Decision | None:
        if self.downloads.torrents and head and is_torrent(head, name, ctype):
            return self._decision(st, "download:torrent", f"a .torrent file ({name or 'unnamed'})",
                                  "file_sharing", "File sharing")
        what = sniff_software(head, name, ctype)
        if what is None or self._software_allowed(st):
            return None
        return self._decision(st, "download:software", f"a software download ({what}: {name or 'unnamed'}) "
                                                       "without approval", "software_downloads",
                              "Software downloads need approval")

    def download_sniffer(self, flow: http.HTTPFlow, st: FlowState) -> Any:
        """A stream callback that holds back the first bytes until they can be
        judged, cuts a blocked download, and passes the rest through."""
        resp = flow.response
        assert resp is not None
        ctype = resp.headers.get("content-type", "")
        name = filename_of(resp.headers.get("content-disposition", ""), st.target.path)
        held: list[bytes] = []
        state = {"judged": False, "size": 0}

        def sniff(chunk: bytes) -> bytes:
            st.bytes_out += len(chunk)
            if state["judged"]:
                return b"" if st.audit_action else chunk
            held.append(chunk)
            state["size"] += len(chunk)
            if state["size"] < SNIFF_BYTES and chunk:
                return b""
            state["judged"] = True
            head = b"".join(held)
            held.clear()
            verdict = self._software_verdict(st, head, name, ctype)
            if verdict is not None:
                self._stop(st, "block", verdict)
                connections.close(flow.client_conn, flow.server_conn)
                return b""
            return head

        return sniff

    def on_response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if resp is None:
            return
        if st.sniff:
            body = resp.get_content(strict=False) or b""
            ctype = resp.headers.get("content-type", "")
            name = filename_of(resp.headers.get("content-disposition", ""), st.target.path)
            verdict = self._software_verdict(st, body[:SNIFF_BYTES], name, ctype)
            if verdict is not None:
                self._stop(st, "block", verdict)
                flow.response = self.owner.block_response(st)
            return
        if st.media is not None and st.media.kind == "playlist" and resp.raw_content is not None:
            self.segments.learn(st.target.url, resp.get_content(strict=False) or b"")
        self.finish(st)

    # -- streaming media ------------------------------------------------------------------

    async def _start_media(self, flow: http.HTTPFlow, st: FlowState, kind: MediaKind) -> bool:
        st.media = kind
        st.media_t0 = time.monotonic()
        limit = self.limit_for(st)
        st.limit = limit
        rules = self.streaming
        declared = self.segments.get(st.target.url) if kind.kind == "segment" else None
        st.declared = declared
        if limit is not None and (limit.daily_seconds is not None or limit.daily_bytes is not None):
            db = self.owner.db
            st.usage_before = await asyncio.to_thread(get_usage, db, st.who.user, self._day(st)) if db else (0.0, 0)
            used_s, used_b = st.usage_before
            if limit.daily_seconds is not None and used_s >= limit.daily_seconds:
                return self._refuse(flow, st, f"the daily streaming budget of {limit.daily_seconds / 60:g} minutes "
                                              f"({limit.id}) is used up: {used_s / 60:.1f} minutes today")
            if limit.daily_bytes is not None and used_b >= limit.daily_bytes:
                return self._refuse(flow, st, f"the daily streaming budget of {limit.daily_bytes / 1e6:g} MB "
                                              f"({limit.id}) is used up")
        if limit is not None and limit.max_stream_seconds is not None and kind.kind == "segment":
            last, seconds = self._streaks.get(st.who.user, (0.0, 0.0))
            if time.monotonic() - last > STREAK_GAP:
                seconds = 0.0
            if seconds >= limit.max_stream_seconds:
                return self._refuse(flow, st, f"one continuous stream may last at most "
                                              f"{limit.max_stream_seconds / 60:g} minutes ({limit.id})")
            st.streak_before = seconds
        if kind.is_index:
            return False  # small, counted as nothing; learned from in on_response
        resp = flow.response
        assert resp is not None

        def meter(chunk: bytes) -> bytes:
            if st.audit_action:
                return b""
            st.bytes_out += len(chunk)
            secs = media_seconds(kind, time.monotonic() - st.media_t0, st.bytes_out, rules.video_kbps,
                                 rules.audio_kbps, declared)
            st.media_seconds = secs
            why = self._over_limit(st, secs)
            if why is not None:
                self._stop(st, "cut", replace(self._decision(st, "streaming:cut", why, "streaming",
                                                             "Streaming limit reached"), action="cut"))
                connections.close(flow.client_conn, flow.server_conn)
                return b""
            return chunk

        resp.stream = meter
        st.counted = True
        return True

    def _over_limit(self, st: FlowState, secs: float) -> str | None:
        lim = st.limit
        if lim is None:
            return None
        if lim.max_stream_seconds is not None and st.streak_before + secs > lim.max_stream_seconds:
            return (f"the stream was cut at the {lim.max_stream_seconds / 60:g}-minute limit for one continuous "
                    f"stream ({lim.id}): TV, films and continual broadcasts are not allowed")
        used_s, used_b = st.usage_before
        if lim.daily_seconds is not None and used_s + secs > lim.daily_seconds:
            return f"the stream was cut when the daily budget of {lim.daily_seconds / 60:g} minutes ran out ({lim.id})"
        if lim.daily_bytes is not None and used_b + st.bytes_out > lim.daily_bytes:
            return f"the stream was cut when the daily budget of {lim.daily_bytes / 1e6:g} MB ran out ({lim.id})"
        return None

    def _refuse(self, flow: http.HTTPFlow, st: FlowState, why: str) -> bool:
        decision = self._decision(st, f"streaming:{st.limit.id if st.limit else 'limit'}", why, "streaming",
                                  "Streaming limit reached")
        self._replace(flow, st, decision, audit_action="limit", status=429)
        return True

    def _replace(self, flow: http.HTTPFlow, st: FlowState, decision: Decision, audit_action: str = "block",
                 status: int = 403) -> None:
        """Answer with the block page instead of the upstream response, whose
        headers have been read but whose body has not: the body is dropped and
        the client is told to close, which stops the transfer."""
        self._stop(st, audit_action, decision)
        page = self.owner.block_response(st)
        page.status_code = status
        page.headers["Connection"] = "close"
        content = page.raw_content or b""
        flow.response = page
        sent = [False]

        def once(chunk: bytes) -> bytes:
            if sent[0]:
                return b""
            sent[0] = True
            return content

        page.stream = once
        st.counted = True
        st.bytes_out = len(content)

    def finish(self, st: FlowState) -> None:
        """A media transfer ended (completely or cut): add it to the day's usage."""
        if st.media is None or st.media.is_index or st.usage_recorded or st.audit_action in ("limit", "block"):
            return
        st.usage_recorded = True
        rules = self.streaming
        secs = st.media_seconds or media_seconds(st.media, time.monotonic() - st.media_t0, st.bytes_out,
                                                 rules.video_kbps, rules.audio_kbps, st.declared)
        st.media_seconds = secs
        if st.media.kind == "segment":
            last, seconds = self._streaks.get(st.who.user, (0.0, 0.0))
            now = time.monotonic()
            self._streaks[st.who.user] = (now, (seconds if now - last <= STREAK_GAP else 0.0) + secs)
        if self.owner.db is not None and (secs or st.bytes_out):
            self._background(add_usage, self.owner.db, st.who.user, self._day(st), secs, st.bytes_out)

