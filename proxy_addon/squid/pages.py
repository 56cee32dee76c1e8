"""``schoolproxy squid-pages``: the block page for the Squid front end, and
its two buttons, the same page and buttons as the mitmproxy front end shows.

Squid answers a blocked request with a redirect (``deny_info``) to
``/.schoolproxy/blocked?t=TOKEN`` here, the token being the one the helper
signed for that block event (who, which address, which category).  The
browser fetches the page through Squid, which adds who is asking
(``X-Forwarded-For``, and ``X-Schoolproxy-User`` from ``%un``); those
headers are believed only from the addresses in ``trusted`` (Squid's),
otherwise the peer address is who is asking.  The buttons post back here,
and are refused unless the token was issued to the person posting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..classify.identity import Identity
from ..grants import feedback
from ..grants.blockpage import BlockNotice, message_page, render_block_page
from .helperruntime import PolicyRuntime

log = logging.getLogger(__name__)
BLOCKED = feedback.PREFIX + "blocked"
FORM_LIMIT = 16 << 10
HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
           ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
           ("Referrer-Policy", "no-referrer")]
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error"}
StartResponse = Callable[..., Any]


class BlockPages:
    def __init__(self, rt: PolicyRuntime, instance: str, trusted: frozenset[str] = frozenset({"127.0.0.1", "::1"})):
        self.rt = rt
        self.instance = instance
        self.trusted = trusted

    def who(self, environ: dict[str, Any]) -> Identity:
        peer = environ.get("REMOTE_ADDR", "")
        ip, user = peer, None
        if peer in self.trusted:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
            if forwarded:
                ip = forwarded.split(",")[-1].strip()  # the last hop is the one Squid added
            named = environ.get("HTTP_X_SCHOOLPROXY_USER", "").split(",")[-1].strip()
            user = named if named and named != "-" else None
        return self.rt.engine.identify(ip, user)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, text = self.route(environ)
        except Exception:  # noqa: BLE001 - a page, never a traceback
            log.exception("schoolproxy: block page failed")
            status, text = 500, "Something went wrong; please tell the school office."
        data = (text if text.startswith("<!doctype") else message_page(text)).encode()
        start_response(f"{status} {REASONS.get(status, 'Error')}", [
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))), *HEADERS])
        return [data]

    def route(self, environ: dict[str, Any]) -> tuple[int, str]:
        """(status, a whole page or a message to wrap in one)."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == BLOCKED:
            if method != "GET":
                return 405, "Use the address the filter sent you to."
            token = (parse_qs(environ.get("QUERY_STRING", "")).get("t") or [""])[0]
            return self.page(token, self.who(environ))
        if path in (feedback.SELF_REPORT, feedback.REQUEST):
            if method != "POST":
                return 405, "Use the buttons on the block page."
            return self.button(path, environ)
        if path == "/healthz":
            return 200, "The block page server is running."
        return 404, "There is nothing here."

    def page(self, token: str, who: Identity) -> tuple[int, str]:
        try:
            event = feedback.read_event(self.rt.secret, token)
        except feedback.Refused as e:
            return e.status, e.message
        engine = self.rt.engine
        cat = engine.config.categories.get(event.category) if event.category else None
        actions = "" if cat is not None and cat.locked else feedback.forms_html(token, cat is None or cat.bypassable) \
            if event.user == who.user \
            else "<p>This block was shown to someone else, so its buttons are not offered here.</p>"
        notice = BlockNotice(
            heading=f"This site is blocked: {cat.title}" if cat else "This site is blocked",
            category_title=cat.title if cat else None, clause=cat.clause if cat else "6.3.1",
            policy_text=cat.policy_text if cat else None, reason=cat.block_message if cat and cat.locked else "",
            url=event.url, user=event.user,
            at=engine.local_time(self.rt.now()), contact=engine.config.settings.contact, actions_html=actions,
            grantable=cat is None or (cat.bypassable and not cat.locked))
        return 403, render_block_page(notice)

    def button(self, path: str, environ: dict[str, Any]) -> tuple[int, str]:
        origin = environ.get("HTTP_ORIGIN", "")
        if origin and origin != "null" and urlsplit(origin).netloc != environ.get("HTTP_HOST", ""):
            return 403, "This form was sent from another site."
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 400, "A malformed form."
        if length > FORM_LIMIT:
            return 413, "That form is too large."
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        who = self.who(environ)
        rt = self.rt
        try:
            event = feedback.verify_event(rt.secret, (form.get("token") or [""])[0], who.user)
            if path == feedback.SELF_REPORT:
                feedback.self_report(rt.db, event, who.client_ip, self.instance, rt.now())
                return 200, feedback.THANKS_SELF_REPORT
            rid = feedback.request_exception(rt.db, event, (form.get("reason") or [""])[0], who.client_ip, rt.now())
            return 200, feedback.THANKS_REQUEST.format(id=rid)
        except feedback.Refused as e:
            return e.status, e.message


def serve(app: BlockPages, host: str, port: int) -> None:
    from cheroot import wsgi

    server = wsgi.Server((host, port), app, numthreads=8, server_name="schoolproxy-pages")
    try:
        server.start()
    finally:
        server.stop()
