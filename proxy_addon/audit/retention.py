"""Keeping data only as long as the school needs it (UK GDPR storage
limitation), without breaking the audit log's hash chains.

``purge`` turns events past their retention into tombstones (every personal
field erased, the time, the action and a digest of the rest kept, so the
chain still verifies; see ``audit.chain``), then deletes runs of
tombstones at the start of each chain, remembering where the chain resumes.
Grants, access reviews, admin actions, exception requests and alerts past theirs are
deleted.  The proxy runs it once a day; ``schoolproxy purge`` runs it now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine as DBEngine
from sqlalchemy import bindparam, delete, func, select, text, update

from ..policy.monitoring import Retention
from .chain import HASHED, PURGED, tombstone
from .db import refresh_statistics
from .models import AccessEvent, AccessReview, AdminAction, AlertRecord, AuditAnchor, ExceptionRequest, Grant, Interception

E = AccessEvent
_ERASED = {"user": "", "client_ip": "", "device": None, "method": "", "scheme": "", "host": "", "url": "", "action": PURGED,
           "category": None, "categories": None, "rule": None, "clause": None, "matched": None, "reason": None,
           "status_code": None, "bytes_out": None, "bytes_in": None, "duration_ms": None, "tls": None,
           "instance": None, "config_digest": None, "event_uid": None, "related_uid": None, "grant_id": None,
           "media_seconds": None, "throttle_bps": None, "throttled_ms": None, "search_terms": None,
           "out_of_hours": None}


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.counts.items())


def purge(db: DBEngine, retention: Retention, now: datetime | None = None) -> PurgeResult:
    now = now or datetime.now(timezone.utc)
    days = retention.days
    before = {k: now - timedelta(days=v) for k, v in days.items()}
    result = PurgeResult()
    with db.begin() as c:
        if c.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_xact_lock(6144201)"))  # one purge at a time across instances
        groups = (("allowed_events", E.action == "allow"), ("blocked_events", E.action == "block"),
                  ("other_events", E.action.not_in(("allow", "block", PURGED))))
        for key, cond in groups:
            result.counts[key] = _erase(c, cond, before[key])
        result.counts["compacted"] = _compact(c, now)
        for key, model, col in (("grants", Grant, Grant.ends_at), ("access_reviews", AccessReview, AccessReview.ts),
                                ("interceptions", Interception, Interception.ends_at),
                                ("admin_actions", AdminAction, AdminAction.ts),
                                ("exception_requests", ExceptionRequest, ExceptionRequest.created_at),
                                ("alerts", AlertRecord, AlertRecord.ts)):
            # an order is kept as its review is; an alert as the blocked events it was about
            kept = before[{"interceptions": "access_reviews", "alerts": "blocked_events"}.get(key, key)]
            result.counts[key] = c.execute(delete(model).where(col < kept)).rowcount
    refresh_statistics(db)
    return result


def _erase(c: Any, cond: Any, before: datetime, batch: int = 5000) -> int:
    """Turn the matching events into tombstones, each keeping its time, its
    action and the digest of what was erased (``chain.tombstone``), so its
    chain still verifies and ``verify`` can check it was old enough."""
    cols = [E.__table__.c[n] for n in ("id", *HASHED)]
    done = 0
    while True:
        rows = c.execute(select(*cols).where(cond, E.ts < before).order_by(E.id).limit(batch)).mappings().all()
        if not rows:
            return done
        c.execute(update(E).where(E.id == bindparam("row_id")).values(**_ERASED, purged=bindparam("kept")),
                  [{"row_id": r["id"], "kept": tombstone(dict(r))} for r in rows])
        done += len(rows)


def _compact(c: object, now: datetime) -> int:
    """Delete each chain's leading tombstones; record where it resumes."""
    removed = 0
    chains = c.execute(select(E.chain).where(E.chain.is_not(None)).distinct()).scalars().all()  # type: ignore[attr-defined]
    for chain in chains:
        first_live = c.execute(select(func.min(E.chain_seq)).where(E.chain == chain, E.action != PURGED)).scalar()  # type: ignore[attr-defined]
        cond = [E.chain == chain, E.action == PURGED]
        if first_live is not None:
            cond.append(E.chain_seq < first_live)
        last = c.execute(select(E.chain_seq, E.chain_hash).where(*cond).order_by(E.chain_seq.desc()).limit(1)).first()  # type: ignore[attr-defined]
        if last is None:
            continue
        c.execute(delete(AuditAnchor).where(AuditAnchor.chain == chain))  # type: ignore[attr-defined]
        c.execute(AuditAnchor.__table__.insert().values(chain=chain, seq=last[0], hash=last[1], purged_at=now))  # type: ignore[attr-defined]
        removed += c.execute(delete(E).where(E.chain == chain, E.action == PURGED, E.chain_seq <= last[0])).rowcount  # type: ignore[attr-defined]
    removed += c.execute(delete(E).where(E.chain.is_(None), E.action == PURGED)).rowcount  # type: ignore[attr-defined]
    return removed
