"""The block page's buttons, posted back through the proxy: "I reached this
by accident" (a self-report) and "Ask for an exception" (a request in the
Headteacher's queue).  Each post carries a token signed for one block event,
person and address (see ``grants.feedback``)."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import http

from ..grants import feedback
from ..grants.blockpage import message_page
from ..urls.normalize import InvalidHost, InvalidURL, normalize_host, split_authority
from .flowstate import FlowState, Runtime

log = logging.getLogger(__name__)


class Buttons:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def answer(self, flow: http.HTTPFlow, st: FlowState) -> None:
        try:
            status, page = await self._feedback(flow, st)
        except Exception:
            log.exception("schoolproxy: block page feedback failed")
            status, page = 500, "Something went wrong; your message was not recorded. Please tell the school office."
        flow.response = http.Response.make(status, message_page(page).encode(), {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def _feedback(self, flow: http.HTTPFlow, st: FlowState) -> tuple[int, str]:
        req = flow.request
        if req.method != "POST":
            return 405, "Use the buttons on the block page."
        origin = req.headers.get("origin")
        if origin and origin != "null":
            try:
                if normalize_host(split_authority(origin.split("://", 1)[-1])[0]) != st.target.host:
                    return 403, "This form was sent from another site."
            except (InvalidHost, InvalidURL):
                return 403, "This form was sent from another site."
        form = req.urlencoded_form
        rt = self.rt
        try:
            event = feedback.verify_event(rt.secret, form.get("token", ""), st.who.user)
            if st.target.path == feedback.SELF_REPORT:
                await asyncio.to_thread(feedback.self_report, rt.database(), event, st.who.client_ip, rt.instance, rt.now())
                return 200, feedback.THANKS_SELF_REPORT
            if st.target.path == feedback.REQUEST:
                rid = await asyncio.to_thread(feedback.request_exception, rt.database(), event,
                                              form.get("reason", ""), st.who.client_ip, rt.now())
                return 200, feedback.THANKS_REQUEST.format(id=rid)
        except feedback.Refused as e:
            return e.status, e.message
        return 404, "Unknown action."
