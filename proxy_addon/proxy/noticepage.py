"""The acceptable-use notice in front of a person's first page of each
period (``policy.noticerules``, ``monitor.noticeacks``): shown instead of the page
(the audit row says ``noticepage``), acknowledged with a signed form posted back
to ``/.schoolproxy/notice``, then the person goes on to the page.  Shown on
plain HTTP and decrypted HTTPS; in ``tls: selective`` a tunnel is decrypted
when the notice is due for its person, so that it can be shown."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import http

from ..classify.identity import Identity
from ..monitor import noticeacks
from ..policy.noticerules import NoticeRules
from ..urls.normalize import InvalidHost, InvalidURL, normalize_host, split_authority
from .flowstate import FlowState, Runtime

log = logging.getLogger(__name__)
PAGE_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


class Notice:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def rules(self) -> NoticeRules | None:
        engine = self.rt.engine
        return engine.config.sections.notice if engine is not None else None

    def due_for(self, who: Identity) -> bool:
        rules = self.rules()
        return rules is not None and noticeacks.due(rules, self.rt.notice_acks,
                                                noticeacks.subject_of(rules, who.user, who.client_ip), self.rt.now())

    def wants(self, flow: http.HTTPFlow, st: FlowState) -> bool:
        """A page the person navigates to (not an image, a script or an API call), while the notice is due."""
        req = flow.request
        if self.rules() is None or st.feedback or st.answered or st.decision.action == "block" or req.method != "GET":
            return False
        dest = req.headers.get("sec-fetch-dest", "document")
        return dest == "document" and "text/html" in req.headers.get("accept", "") and self.due_for(st.who)

    def show(self, flow: http.HTTPFlow, st: FlowState) -> None:
        rules = self.rules()
        assert rules is not None and self.rt.engine is not None
        subject = noticeacks.subject_of(rules, st.who.user, st.who.client_ip)
        token = noticeacks.make_token(self.rt.secret, subject, st.target.url)
        page = noticeacks.notice_page(rules, token, st.target.url, self.rt.engine.config.settings.contact)
        flow.response = http.Response.make(200, page.encode(), PAGE_HEADERS)
        st.answered = True
        st.audit_action = "notice"
        st.note("the acceptable-use notice was shown first")

    async def answer(self, flow: http.HTTPFlow, st: FlowState) -> None:
        """The "I understand" button: record it, then go on to the page."""
        rules, req, rt = self.rules(), flow.request, self.rt
        status, text = 404, "There is no notice to acknowledge."
        if rules is not None:
            origin = req.headers.get("origin")
            try:
                if req.method != "POST":
                    raise ValueError("use the button on the notice")
                if origin and origin != "null" and normalize_host(
                        split_authority(origin.split("://", 1)[-1])[0]) != st.target.host:
                    raise ValueError("this form was sent from another site")
                subject = noticeacks.subject_of(rules, st.who.user, st.who.client_ip)
                url = noticeacks.read_token(rt.secret, req.urlencoded_form.get("token", ""), subject)
                now = rt.now()
                await asyncio.to_thread(noticeacks.record_ack, rt.database(), subject, st.who.user, st.who.client_ip,
                                        rt.instance, now)
                rt.notice_acks[subject] = now
                flow.response = http.Response.make(303, b"", {"Location": url, "Cache-Control": "no-store"})
                return
            except (ValueError, InvalidHost, InvalidURL) as e:
                status, text = 403, str(e)
            except Exception:
                log.exception("schoolproxy: recording a notice acknowledgement failed")
                status, text = 503, "Your acknowledgement could not be recorded; please try again."
        flow.response = http.Response.make(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})
