"""Exceptional interception of one person's electronic correspondence.

Webmail and messaging (categories marked ``correspondence: true``, which
must also be ``decrypt: false``) are never decrypted: the policy says
electronic correspondence "will only be intercepted in exceptional
circumstances" (6.3.1).  The exception is an *interception order*: one named
person, for a recorded concern (a reason and a reference, as opening a
person's history needs), ordered by a role the rules name
(``monitoring.interception_roles``, default the headteacher), for a limited
time (``monitoring.interception_max_days``, default 7).  While it runs, that
person's correspondence tunnels are decrypted in ``tls: selective`` and
``tls: intercept`` mode (never in ``hostname`` mode, which decrypts nothing)
and each request is recorded with ``tls = 'interception'`` and the order's
number.

Every order is an ``access_reviews`` row of kind ``intercept`` (so a
person's subject-access record shows it) plus an ``interceptions`` row, and
an ``admin_actions`` row, in one transaction; a refused order and every
revocation are recorded too.  Banking and health, which are ``decrypt:
false`` but not correspondence, can never be opened this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine as DBEngine
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action, record_refusal
from ..audit.db import detached
from ..audit.models import Interception
from ..policy.monitoring import Monitoring
from .history import Concern, ConcernRequired, add_review, check_concern

WHAT = "order a person's correspondence decrypted"


@dataclass(frozen=True, slots=True)
class ActiveOrder:
    id: int
    subject: str
    starts_at: datetime
    ends_at: datetime
    reference: str

    def applies(self, user: str, now: datetime) -> bool:
        return self.subject == user and self.starts_at <= now < self.ends_at


def order_interception(db: DBEngine, concern: Concern, subject: str, hours: float, mon: Monitoring,
                       now: datetime | None = None) -> Interception:
    """Record an order, or raise ConcernRequired; either way the attempt is recorded."""
    now = now or datetime.now(timezone.utc)
    what = f"correspondence of {subject}"
    try:
        check_concern(concern, mon.interception_roles, WHAT)
        if not subject.strip():
            raise ConcernRequired("name the person whose correspondence is to be decrypted")
        if not 0 < hours <= mon.interception_max_days * 24:
            raise ConcernRequired(f"an interception order runs for more than 0 and at most "
                                  f"{mon.interception_max_days:g} days (monitoring.interception_max_days); "
                                  f"asked for {hours:g} hours")
    except ConcernRequired as e:
        record_refusal(db, concern.viewer, "interception.order", what, e, concern.ip)
        raise
    end = now + timedelta(hours=hours)
    with Session(db) as s, s.begin():
        review = add_review(s, concern, subject.strip(), "intercept", now, end)
        order = Interception(subject=subject.strip(), starts_at=now, ends_at=end, reason=concern.reason.strip(),
                             reference=concern.reference.strip(), ordered_by=concern.viewer,
                             ordered_role=concern.role, review_id=review.id)
        s.add(order)
        s.flush()
        record_action(s, concern.viewer, "interception.order", f"interception {order.id}: {what}",
                      f"until {end.isoformat(timespec='minutes')}; concern {concern.reference.strip()}: "
                      f"{concern.reason.strip()}", concern.ip)
        s.expunge(order)
        return order


def revoke_interception(db: DBEngine, order_id: int, by: str, reason: str, ip: str | None = None) -> Interception:
    now = datetime.now(timezone.utc)
    with Session(db) as s, s.begin():
        order = s.get(Interception, order_id)
        if order is not None and order.revoked_at is None and order.ends_at > now:
            order.revoked_at, order.revoked_by = now, by
            record_action(s, by, "interception.revoke", f"interception {order_id}", reason, ip)
            s.flush()
            s.expunge(order)
            return order
    error = ConcernRequired(f"no running interception order {order_id}")
    record_refusal(db, by, "interception.revoke", f"interception {order_id}", error, ip)
    raise error


def list_interceptions(db: DBEngine, active_only: bool = True, now: datetime | None = None) -> list[Interception]:
    now = now or datetime.now(timezone.utc)
    q = select(Interception).order_by(Interception.id.desc())
    if active_only:
        q = q.where(Interception.revoked_at.is_(None), Interception.ends_at > now)
    return detached(db, q)


def load_active(db: DBEngine, now: datetime) -> tuple[ActiveOrder, ...]:
    """The orders the proxy applies (polled with the grants)."""
    return tuple(ActiveOrder(o.id, o.subject, o.starts_at, o.ends_at, o.reference)
                 for o in list_interceptions(db, True, now))


def covering(orders: tuple[ActiveOrder, ...], user: str, now: datetime) -> ActiveOrder | None:
    for o in orders:
        if o.applies(user, now):
            return o
    return None


def order_reason(order: ActiveOrder) -> str:
    """What a decrypted request's audit row says about the order that opened it."""
    return (f"interception order {order.id} (concern {order.reference}) until "
            f"{order.ends_at.isoformat(timespec='minutes')}")
