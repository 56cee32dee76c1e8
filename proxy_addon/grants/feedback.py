"""The two buttons on every block page (policy 6.3.1): "I reached this by
accident" (a self-report, noted for the Senior Leadership Team) and "Ask for
an exception" (a request in the Headteacher's queue).

The page carries a token signed with the proxy's secret that names the block
event, the person it was shown to, the address and the category.  The forms
post back to a reserved path on the same site (``/.schoolproxy/…``), which
the proxy answers itself, so they work from inside the proxied browser, over
plain HTTP and intercepted HTTPS alike.  A submission is refused when:

* the token is forged, expired, or was issued to someone else (a request
  cannot be filed for another person or for an address never blocked);
* it was used before for the same action (a replay);
* the person has sent too many in the last ten minutes (rate limit, counted
  in the database so that every proxy instance agrees);
* the browser says it comes from another site (``Origin``).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html import escape

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Engine as DBEngine
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit.chain import Chain
from ..audit.models import AccessEvent, ExceptionRequest

PREFIX = "/.schoolproxy/"
SELF_REPORT = PREFIX + "self-report"
REQUEST = PREFIX + "request-exception"
TOKEN_MAX_AGE = 2 * 3600
RATE_WINDOW = timedelta(minutes=10)
RATE_LIMIT = 5
_CHAIN_LOCK = threading.Lock()
THANKS_SELF_REPORT = ("Thank you. Your report that you reached this site by accident has been noted for the "
                      "Senior Leadership Team. Genuine mistakes and accidents are not treated as a breach of the "
                      "policy.")
THANKS_REQUEST = ("Your request (number {id}) has been sent to the Headteacher. You will be able to use the site "
                  "once it has been granted.")


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class BlockEvent:
    uid: str
    user: str
    url: str
    host: str
    category: str | None


def new_event_uid() -> str:
    return uuid.uuid4().hex


def _serializer(secret: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="schoolproxy-block-event")


def sign_event(secret: bytes, event: BlockEvent) -> str:
    return _serializer(secret).dumps([event.uid, event.user, event.url, event.host, event.category])


def read_event(secret: bytes, token: str) -> BlockEvent:
    """The block event a token names, if we signed it and it is not too old."""
    try:
        uid, owner, url, host, category = _serializer(secret).loads(token, max_age=TOKEN_MAX_AGE)
    except SignatureExpired as e:
        raise Refused(403, "This block page is too old: reload the page and try again.") from e
    except (BadSignature, ValueError, TypeError) as e:
        raise Refused(403, "This form was not issued by the school's filter.") from e
    return BlockEvent(uid, owner, url, host, category)


def verify_event(secret: bytes, token: str, user: str) -> BlockEvent:
    """As ``read_event``, and the token must have been issued to ``user``."""
    event = read_event(secret, token)
    if event.user != user:
        raise Refused(403, "This block page was shown to someone else.")
    return event


def forms_html(token: str, grantable: bool = True) -> str:
    """The forms for the block page (everything in them is escaped): the
    self-report, and the exception request unless no grant could lift this
    block (a category that is not bypassable: the Headteacher's Grant
    button would only fail)."""
    t = escape(token, quote=True)
    report = f"""<form method="post" action="{SELF_REPORT}">
<input type="hidden" name="token" value="{t}">
<button type="submit" class="secondary" id="self-report">I reached this by accident</button>
</form>"""
    if not grantable:
        return report + ('\n<p id="no-exception">No exception can be made for this category. If you think the site '
                         "is in the wrong category, tell the IT technician.</p>")
    return report + f"""
<form method="post" action="{REQUEST}">
<input type="hidden" name="token" value="{t}">
<label for="reason">Ask for an exception: why do you need this site?</label>
<textarea id="reason" name="reason" required maxlength="2000"></textarea>
<button type="submit" id="ask-exception">Ask for an exception</button>
</form>"""


def _recent(s: Session, user: str, now: datetime) -> int:
    since = now - RATE_WINDOW
    reports = s.scalar(select(func.count()).select_from(AccessEvent).where(
        AccessEvent.user == user, AccessEvent.action == "self_report", AccessEvent.ts >= since)) or 0
    requests = s.scalar(select(func.count()).select_from(ExceptionRequest).where(
        ExceptionRequest.user == user, ExceptionRequest.created_at >= since)) or 0
    return int(reports) + int(requests)


def self_report(db: DBEngine, event: BlockEvent, client_ip: str, instance: str, now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    # The lock spans the transaction: this instance's feedback chain has one writer at a time.
    with _CHAIN_LOCK, Session(db) as s, s.begin():
        if _recent(s, event.user, now) >= RATE_LIMIT:
            raise Refused(429, "Too many reports in the last few minutes; please try again later.")
        dup = s.scalar(select(func.count()).select_from(AccessEvent).where(
            AccessEvent.related_uid == event.uid, AccessEvent.action == "self_report"))
        if dup:
            raise Refused(409, "This block has already been reported.")
        row = {
            "ts": now, "user": event.user, "client_ip": client_ip, "method": "POST",
            "scheme": event.url.split(":", 1)[0], "host": event.host, "url": event.url,
            "category": event.category, "action": "self_report", "rule": "self_report", "clause": "6.3.1",
            "reason": "reported by the user as reached by accident", "related_uid": event.uid,
            "instance": instance, "event_uid": new_event_uid()}
        chain = Chain(f"{instance}/feedback"[:80]).load(s.connection())
        chain.stamp([row])
        s.execute(insert(AccessEvent), [row])
        chain.save(s.connection(), [row])


def request_exception(db: DBEngine, event: BlockEvent, reason: str, client_ip: str,
                      now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    reason = reason.strip()
    if not reason:
        raise Refused(400, "Please say why you need this site.")
    try:
        with Session(db) as s, s.begin():
            if _recent(s, event.user, now) >= RATE_LIMIT:
                raise Refused(429, "Too many requests in the last few minutes; please try again later.")
            req = ExceptionRequest(created_at=now, user=event.user, client_ip=client_ip, url=event.url,
                                   host=event.host, category=event.category, reason=reason[:2000],
                                   event_uid=event.uid, status="pending")
            s.add(req)
            s.flush()
            return req.id
    except IntegrityError as e:
        raise Refused(409, "An exception has already been requested for this block.") from e
