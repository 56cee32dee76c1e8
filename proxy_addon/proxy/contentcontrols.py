"""Content controls inside allowed traffic: downloads and uploads of
personal data (policy 6.3.1), and the response-time dispatch that hands
media to the streaming limits (``streaming``).  They need to see content, so
with ``tls: hostname`` they apply to plain HTTP only; with ``tls: intercept``
to HTTPS too.

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

from typing import Any

from mitmproxy import http

from ..classify.decision import Decision
from ..content.documents import form_files
from ..content.downloads import SNIFF_BYTES, filename_of, is_attachment, is_torrent, is_tracker_request, sniff_software
from ..content.media import classify
from ..content.personaldata import Scanner, UploadScan, scan_upload
from ..policy.contentrules import DownloadRules, UploadRules
from . import connections
from .blocking import Pages, stop
from .flowstate import FlowState, Runtime
from .streaming import Streaming

RENDERED = ("text/html", "text/css", "text/javascript", "application/javascript", "application/json",
            "application/xml", "text/xml", "image/", "font/", "text/plain", "application/manifest+json",
            "application/wasm")


class ContentControls:
    def __init__(self, rt: Runtime, pages: Pages) -> None:
        self.rt = rt
        self.pages = pages
        self.streaming = Streaming(rt, pages)

    @property
    def downloads(self) -> DownloadRules:
        return self.rt.engine.config.sections.downloads or DownloadRules()  # type: ignore[union-attr]

    @property
    def uploads(self) -> UploadRules:
        return self.rt.engine.config.sections.uploads or UploadRules()  # type: ignore[union-attr]

    # -- requests --------------------------------------------------------------------

    def on_requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """Request-time controls; True if the request was answered."""
        req = flow.request
        if self.downloads.torrents and is_tracker_request(st.target.path, st.target.query):
            stop(st, "block", self.pages.content_decision(
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
            st.transfer.bytes_in += len(chunk)
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
        ctype = req.headers.get("content-type", "")
        parts = (form_files(ctype, body) if "multipart/form-data" in ctype else []) or [("upload", body)]
        result = scan_upload(parts, self.uploads.scan_limit)
        if self._upload_blocked(st, result):
            self.pages.refuse(flow, st)

    def _upload_blocked(self, st: FlowState, scanned: Scanner | UploadScan) -> bool:
        """Block an upload with personal data (or one the rules say must be
        readable and is not) to a destination the rules name; otherwise note
        what was found in the audit row."""
        findings = scanned.findings
        where = f" in {', '.join(scanned.matched_in[:5])}" if isinstance(scanned, UploadScan) and \
            scanned.matched_in and scanned.matched_in != ["upload"] else ""
        unread = scanned.unscanned if isinstance(scanned, UploadScan) else []
        refused = scanned.refused if isinstance(scanned, UploadScan) else None
        dest = next((c for c in st.decision.categories if c in self.uploads.block_to), None)
        why = None
        if refused:
            why = f"an upload built to exhaust the filter, refused unread ({refused})"
        elif findings.sensitive:
            why = f"an upload to {(dest or 'this site').replace('_', ' ')} carrying personal data " \
                  f"({findings.summary()}{where})"
        elif unread and self.uploads.block_unscannable and dest is not None:
            why = f"an upload to {dest.replace('_', ' ')} that could not be checked for personal data " \
                  f"({'; '.join(unread[:5])})"
        if why is None or (dest is None and not refused):
            notes = [f"the upload carries personal data ({findings.summary()}{where})"] if findings.sensitive else []
            notes += [f"not scanned: {'; '.join(unread[:5])}"] if unread else []
            if notes:
                st.note("; ".join(notes))
            return False
        stop(st, "block", self.pages.content_decision(
            st, "upload:personal-data", why, dest or (st.decision.category or "cloud_storage"),
            "Personal data must not go to cloud storage"))
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
        st.transfer.resp_headers = (ctype, disposition, length)
        return st.transfer.resp_headers

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
        ctype, disposition, length = st.transfer.resp_headers or self.read_headers(resp, st)
        kind = classify(ctype, st.target.path)
        st.transfer.content_kind = "media" if kind is not None and not kind.is_index else None
        name = filename_of(disposition, st.target.path)
        rules = self.downloads
        if kind is not None and not kind.is_index and is_attachment(disposition) and rules.media_files:
            self.pages.replace(flow, st, self.pages.content_decision(
                st, "download:media-file", f"{kind.kind} delivered as a file ({name}): downloading media for "
                                           "personal use is not permitted", "media_downloaders", "Media download"))
            return True
        if rules.torrents and is_torrent(b"", name, ctype):
            self.pages.replace(flow, st, self.pages.content_decision(st, "download:torrent", f"a .torrent file ({name})",
                                                   "file_sharing", "File sharing"))
            return True
        if kind is not None:
            return await self.streaming.start(flow, st, kind)
        if not self._download_candidate(ctype, disposition):
            return False
        st.transfer.content_kind = "download"
        verdict = self._software_verdict(st, b"", name, ctype)
        if verdict is not None:
            self.pages.replace(flow, st, verdict)
            return True
        if length.isdigit() and int(length) <= rules.sniff_buffer and not resp.stream:
            st.transfer.sniff = True  # judged whole in on_response
            return True
        resp.stream = self.download_sniffer(flow, st)
        st.transfer.counted = True
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
                   for g in self.rt.grants)

    def _software_verdict(self, st: FlowState, head: bytes, name: str, ctype: str) -> Decision | None:
        if self.downloads.torrents and head and is_torrent(head, name, ctype):
            return self.pages.content_decision(st, "download:torrent", f"a .torrent file ({name or 'unnamed'})",
                                  "file_sharing", "File sharing")
        what = sniff_software(head, name, ctype)
        if what is None or self._software_allowed(st):
            return None
        return self.pages.content_decision(st, "download:software", f"a software download ({what}: {name or 'unnamed'}) "
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
            st.transfer.bytes_out += len(chunk)
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
                stop(st, "block", verdict)
                connections.close(flow.client_conn, flow.server_conn)
                return b""
            return head

        return sniff

    def on_response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if resp is None:
            return
        if st.transfer.sniff:
            body = resp.get_content(strict=False) or b""
            ctype = resp.headers.get("content-type", "")
            name = filename_of(resp.headers.get("content-disposition", ""), st.target.path)
            verdict = self._software_verdict(st, body[:SNIFF_BYTES], name, ctype)
            if verdict is not None:
                stop(st, "block", verdict)
                self.pages.refuse(flow, st)
            return
        self.streaming.learn(flow, st)
        self.streaming.finish(st)

    def finish(self, st: FlowState) -> None:
        """The flow ended (completely or in an error)."""
        self.streaming.finish(st)
