"""Answering a blocked request: the block page (category, clause, the
policy's words, and the signed buttons), and replacing a response whose
headers were read but whose content a control refused."""

from __future__ import annotations

from mitmproxy import http

from ..classify.decision import Decision
from ..grants import feedback
from ..grants.blockpage import BlockNotice, heading_for, page_reason, render_block_page
from ..grants.rules import blocking_categories_bypassable
from .flowstate import FlowState, Runtime


class Pages:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def block_response(self, st: FlowState) -> http.Response:
        engine = self.rt.engine
        assert engine is not None
        cfg = engine.config
        d = st.decision
        st.uid = feedback.new_event_uid()
        token = feedback.sign_event(self.rt.secret, feedback.BlockEvent(
            st.uid, st.who.user, st.target.url, st.target.host, d.category))
        cat = cfg.categories.get(d.category) if d.category else None
        locked = cat is not None and cat.locked  # no exception can be asked for, so no buttons
        grantable = not locked and blocking_categories_bypassable(cfg, d)
        notice = BlockNotice(
            heading=heading_for(d),
            category_title=d.title, clause=d.clause, policy_text=d.policy_text,
            url=st.target.url, user=st.who.user, at=engine.local_time(st.started),
            contact=cfg.settings.contact, reason=cat.block_message if locked else page_reason(d),  # type: ignore[union-attr]
            actions_html="" if locked else feedback.forms_html(token, grantable),
            grantable=grantable,
        )
        return http.Response.make(403, render_block_page(notice).encode(), {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            "X-Schoolproxy-Category": d.category or "",
        })

    def refuse(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """Answer with the block page for the block ``st`` now holds, unless
        log-only mode spared it: True if the request was refused."""
        if st.spared:
            return False
        flow.response = self.block_response(st)
        return True

    def content_decision(self, st: FlowState, rule: str, reason: str, category: str | None, title: str) -> Decision:
        """A block by a content control (a download, an upload, a stream),
        naming the category whose words the page quotes."""
        cat = self.rt.engine.config.categories.get(category) if category else None  # type: ignore[union-attr]
        return Decision("block", category, st.decision.categories, rule, "6.3.1", st.decision.matched,
                        st.decision.origin, reason, st.decision.decrypt,
                        cat.policy_text if cat else st.decision.policy_text, title)

    def replace(self, flow: http.HTTPFlow, st: FlowState, decision: Decision, audit_action: str = "block",
                status: int = 403) -> None:
        """Answer with the block page instead of the upstream response, whose
        headers have been read but whose body has not: the body is dropped and
        the client is told to close, which stops the transfer."""
        stop(st, audit_action, decision)
        if st.spared:  # log-only: recorded as what would have happened; the response goes on
            return
        page = self.block_response(st)
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
        st.transfer.counted = True
        st.transfer.bytes_out = len(content)


def stop(st: FlowState, audit_action: str, decision: Decision) -> None:
    """A content control refused this flow: record why, and how."""
    st.overrule(decision)
    st.audit_action = audit_action
