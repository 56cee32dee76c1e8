"""Judging what a page says (``page_content`` rules, ``content.phrases``):
the decoded text of HTML and plain-text pages from hosts in no list (or
suspected ones; every allowed page with ``apply_to: all``) is scored with
the weighted phrase lists, and a page past a category's threshold is
replaced by the block page (rule ``content:<category>``).  A search results
page is scored on its search terms too.

Bounded: only the first ``scan_kb`` of a page are held and scored.  A page
of known length within that is held whole and, if it crosses a threshold,
answered with the block page (403) instead.  A page of unknown length, or a
longer one, streams: its first ``scan_kb`` are held back while they arrive,
then scored; if it crosses a threshold the block page is sent in place of
the page (the status line has gone already, so it arrives as 200) and the
rest is dropped; otherwise what was held is sent and the rest streams.
The audit row records the score and the phrases that counted, never the page.
"""

from __future__ import annotations

from dataclasses import replace

from mitmproxy import http

from ..content.phrases import matcher_for
from ..monitor.searchterms import extract as extract_search
from ..policy.pagecontent import PageContentRules
from .blocking import Pages, stop
from .flowstate import FlowState, Runtime

TEXT_TYPES = ("text/html", "text/plain", "application/xhtml")


class PageCheck:
    def __init__(self, rt: Runtime, pages: Pages) -> None:
        self.rt = rt
        self.pages = pages

    def rules(self) -> PageContentRules | None:
        engine = self.rt.engine
        rules = engine.config.sections.page_content if engine is not None else None
        return rules if rules is not None and rules.phrases else None

    def applies(self, st: FlowState) -> bool:
        """Whether this request's page would be judged (decided from the request)."""
        rules = self.rules()
        d = st.decision
        if rules is None or st.answered or d.action == "block" or st.method not in ("GET", "POST"):
            return False
        if d.rule.startswith(("override:", "grant:")):
            return False  # the school (or the Headteacher) decided about this site explicitly
        return rules.apply_to == "all" or d.category is None or d.rule.startswith("suspect:")

    def prepare(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """Ask for the page uncompressed, so that its text can be read as it
        streams (only for the requests whose pages are judged)."""
        if self.applies(st):
            flow.request.headers["accept-encoding"] = "identity"

    def wants(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        resp = flow.response
        if resp is None or resp.status_code != 200 or not self.applies(st):
            return False
        ctype = resp.headers.get("content-type", "").strip().lower()
        # No type at all (a bare server relaying a page): scored as text, never skipped.
        return not ctype or ctype.startswith(TEXT_TYPES)

    def start(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """Hold the page (known length within the limit) or stream it through
        a scorer that holds its first ``scan_kb``."""
        rules = self.rules()
        assert rules is not None and flow.response is not None
        resp = flow.response
        length = resp.headers.get("content-length", "")
        st.transfer.page_check = True
        if length.isdigit() and int(length) <= rules.scan_bytes and "content-encoding" not in resp.headers:
            return  # mitmproxy holds it; judged in ``finish``
        held: list[bytes] = []
        size = [0]
        state = {"decided": False, "blocked": False}

        # Nothing to send is [] and not b"": an empty chunk would end a chunked response.
        def scan(chunk: bytes) -> bytes | list[bytes]:
            st.transfer.bytes_out += len(chunk)
            if state["blocked"]:
                return []
            if state["decided"]:
                return chunk
            held.append(chunk)
            size[0] += len(chunk)
            if size[0] < rules.scan_bytes and chunk:
                return []  # keep holding (an empty chunk is the end of the page)
            state["decided"] = True
            body = b"".join(held)
            held.clear()
            if self._judge(st, body, resp.headers.get("content-encoding", ""), rules) and not st.spared:
                state["blocked"] = True
                page = self.pages.block_response(st).raw_content or b""
                return page
            return body

        st.transfer.counted = True
        resp.stream = scan

    def finish(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """A held page: judge it whole, and answer with the block page if it fails."""
        resp = flow.response
        if resp is None or resp.stream:
            return
        rules = self.rules()
        if rules is None:
            return
        body = resp.get_content(strict=False) or b""
        if self._judge(st, body[: rules.scan_bytes], "", rules, decoded=True):
            self.pages.refuse(flow, st)

    def _judge(self, st: FlowState, body: bytes, encoding: str, rules: PageContentRules,
               decoded: bool = False) -> bool:
        if encoding and not decoded:
            try:
                from mitmproxy.net import encoding as enc

                decoded_body = enc.decode(body, encoding)
                if not isinstance(decoded_body, bytes):
                    return False
                body = decoded_body[: rules.scan_bytes]  # the part that arrived may be cut
            except (ValueError, OSError):
                return False
        search = extract_search(st.target.host, st.target.path, st.target.query)
        score = matcher_for(rules).score_page(body.decode("utf-8", "replace"),
                                              search.split(": ", 1)[-1].lower() if search else "")
        category = score.verdict(rules)
        if category is None:
            return False
        why = score.describe(category, rules)
        cat = self.rt.engine.config.categories.get(category) if self.rt.engine else None
        decision = self.pages.content_decision(st, f"content:{category}", f"the page's content: {why}", category,
                                               cat.title if cat else category)
        stop(st, "block", replace(decision, clause=cat.clause if cat else "6.3.1"))
        return True

