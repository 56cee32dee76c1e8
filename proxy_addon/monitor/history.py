"""One person's history, opened only for a recorded concern (policy 6.3.1:
search histories are accessed "only … when a legitimate concern has been
raised"), and a person's own data for a subject access request.

Every view or export is first written to ``access_reviews`` (who looked, at
whose history, when, why, under which reference), in the same transaction as
nothing else, so that the record exists before the data is shown; a person's
record can later be checked against it.  Without a reason, a reference and a
role the rules name, nothing is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine as DBEngine
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ..audit.db import detached
from ..audit.models import AccessEvent, AccessReview


class ConcernRequired(PermissionError):
    pass


@dataclass(frozen=True, slots=True)
class Concern:
    viewer: str
    role: str
    reason: str
    reference: str
    ip: str | None = None


EXPORT_COLUMNS = ("ts", "action", "category", "host", "url", "search_terms", "rule", "reason", "status_code",
                  "bytes_out", "media_seconds", "client_ip", "device", "grant_id")


def check_concern(concern: Concern, allowed_roles: frozenset[str] | None, what: str) -> None:
    """A role the rules name, a reason and a reference, or ConcernRequired."""
    if allowed_roles is not None and concern.role not in allowed_roles:
        raise ConcernRequired(f"the role {concern.role!r} may not {what} "
                              f"(the rules allow: {', '.join(sorted(allowed_roles))})")
    if not concern.reason.strip() or not concern.reference.strip():
        raise ConcernRequired(f"only a recorded concern lets anyone {what}: give the reason and a reference")


def add_review(s: Session, concern: Concern, subject: str, kind: str, t0: datetime | None,
               t1: datetime | None) -> AccessReview:
    """The access_reviews row, in the caller's transaction."""
    review = AccessReview(ts=datetime.now(timezone.utc), viewer=concern.viewer, viewer_role=concern.role,
                          subject=subject, kind=kind, reason=concern.reason.strip(),
                          reference=concern.reference.strip(), period_from=t0, period_to=t1, ip=concern.ip)
    s.add(review)
    s.flush()
    return review


def record_review(db: DBEngine, concern: Concern, subject: str, kind: str, allowed_roles: frozenset[str] | None,
                  t0: datetime | None, t1: datetime | None) -> AccessReview:
    check_concern(concern, allowed_roles, "open a person's history")
    with Session(db) as s, s.begin():
        review = add_review(s, concern, subject, kind, t0, t1)
        s.expunge(review)
        return review


def events(db: DBEngine, subject: str, t0: datetime | None, t1: datetime | None, limit: int = 5000) -> list[dict[str, Any]]:
    """The person's events, each block with the self-report that followed it (if any)."""
    report = aliased(AccessEvent)
    q = (select(AccessEvent, report.ts).outerjoin(report, (report.related_uid == AccessEvent.event_uid)
                                                  & (report.action == "self_report"))
         .where(AccessEvent.user == subject, AccessEvent.action != "self_report"))
    if t0 is not None:
        q = q.where(AccessEvent.ts >= t0)
    if t1 is not None:
        q = q.where(AccessEvent.ts < t1)
    with Session(db) as s:
        out = []
        for e, reported in s.execute(q.order_by(AccessEvent.ts).limit(limit)):
            row = {c: getattr(e, c) for c in EXPORT_COLUMNS}
            row["self_reported"] = reported
            out.append(row)
        return out


def open_history(db: DBEngine, concern: Concern, subject: str, allowed_roles: frozenset[str],
                 t0: datetime | None = None, t1: datetime | None = None, kind: str = "view") -> list[dict[str, Any]]:
    record_review(db, concern, subject, kind, allowed_roles, t0, t1)
    return events(db, subject, t0, t1)


def reviews_of(db: DBEngine, subject: str) -> list[AccessReview]:
    return detached(db, select(AccessReview).where(AccessReview.subject == subject).order_by(AccessReview.ts))
